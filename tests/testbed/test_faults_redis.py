"""Redis down: sessions, cache and queue are unavailable -> 503, then recovery."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from testbed.api.client import ArchivistClient
from testbed.stack import Stack
from tests.conftest import retrying_503

from .test_api_auth import assert_error
from .test_faults_postgres import MAX_FAILURE_S, timed, wait_until_ok


def test_redis_down_is_503_and_recovers(clean_faults: Stack) -> None:
    stack = clean_faults
    with ArchivistClient(stack.api_url, timeout=30) as api:
        retrying_503(api.login)
        vod = retrying_503(api.create_vod)
        stack.faults.disable("redis")
        try:
            for call in (
                lambda: api.request("GET", f"/api/vods/{vod['id']}"),
                lambda: api.request("POST", f"/api/vods/{vod['id']}/process"),
                lambda: api.http.post(
                    "/api/auth/login", json={"username": "user004", "password": "x"}
                ),
            ):
                response, seconds = timed(call)
                error = assert_error(response, 503, "unavailable")
                assert "redis" in str(error["message"])
                assert seconds < MAX_FAILURE_S
            health = api.http.get("/api/health")
            assert health.status_code == 503
            assert health.json()["checks"]["redis"]["ok"] is False
        finally:
            stack.faults.enable("redis")
        wait_until_ok(lambda: api.request("GET", f"/api/vods/{vod['id']}"))
        # the failed process request left no job behind: a new one goes through
        started = api.request("POST", f"/api/vods/{vod['id']}/process")
        assert started.status_code == 202
        done = api.wait_for(vod["id"], {"published", "failed"}, timeout=30)
        assert done["status"] == "published", done


def not_of_redis(answer: httpx.Response) -> bool:
    """A 503 for the database pool or the request deadline: load, not a Redis failure."""
    text = answer.text
    return "redis" not in text.lower() and (
        "database is unavailable" in text or "request took over" in text
    )


def test_connections_the_link_closed_while_idle_are_not_lent_to_requests(
    clean_faults: Stack,
) -> None:
    """After an outage the API's pool still holds connections the link closed while they
    sat idle; each must be replaced before use, not answer a request with a 503."""
    stack = clean_faults
    with ArchivistClient(stack.api_url) as api:
        retrying_503(api.login)
        headers = api.headers

    def burst() -> list[int]:
        """20 reads at once, each first taking a Redis connection (the session check).

        On a busy machine a read may wait out the database pool (10 connections, 2 s) or
        the request deadline: that 503 names no Redis failure, and its client retries it.
        A 503 of Redis is the defect and is returned as it came."""

        def get(_: int) -> int:
            deadline = time.monotonic() + 60  # a hang guard for the retries
            with httpx.Client(base_url=stack.api_url, timeout=20) as http:
                while True:
                    answer = http.get("/api/vods", params={"limit": 1}, headers=headers)
                    if not (answer.status_code == 503 and not_of_redis(answer)):
                        return answer.status_code
                    assert time.monotonic() < deadline, answer.text
                    time.sleep(0.1)

        with ThreadPoolExecutor(max_workers=20) as pool:
            return list(pool.map(get, range(20)))

    assert burst() == [200] * 20  # the pool now holds many idle connections
    stack.faults.disable("redis")  # closes every one of them
    time.sleep(0.5)
    stack.faults.enable("redis")
    assert burst() == [200] * 20

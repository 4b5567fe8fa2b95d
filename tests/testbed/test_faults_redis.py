"""Redis down: sessions, cache and queue are unavailable -> 503, then recovery."""

from __future__ import annotations

from testbed.api.client import ArchivistClient
from testbed.stack import Stack

from .test_api_auth import assert_error
from .test_faults_postgres import MAX_FAILURE_S, timed, wait_until_ok


def test_redis_down_is_503_and_recovers(clean_faults: Stack) -> None:
    stack = clean_faults
    with ArchivistClient(stack.api_url, timeout=30) as api:
        api.login()
        vod = api.create_vod()
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

"""PostgreSQL down or black-holed: the API answers 503 quickly and recovers by itself."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx

from testbed.api.client import ArchivistClient
from testbed.api.settings import AppConfig
from testbed.stack import Stack

from .test_api_auth import assert_error
from .test_worker_flow import assert_published_once, slow_worker_config

CONFIG = AppConfig.load()
# A dependency failure must be answered within the request deadline, plus slack for a
# 2-core machine shared with other work.
MAX_FAILURE_S = CONFIG.api.request_timeout_s + 2.0


def timed(call: Callable[[], httpx.Response]) -> tuple[httpx.Response, float]:
    start = time.monotonic()
    response = call()
    return response, time.monotonic() - start


def wait_until_ok(call: Callable[[], httpx.Response], timeout: float = 20.0) -> float:
    """Seconds until `call` answers 2xx; fails the test after `timeout`."""
    start = time.monotonic()
    last = None
    while time.monotonic() - start < timeout:
        last = call()
        if last.status_code < 300:
            return time.monotonic() - start
        assert last.status_code == 503, last.text  # never a 500 on the way back
        time.sleep(0.2)
    raise AssertionError(f"not recovered within {timeout}s: {last and last.text}")


def test_postgres_down_is_503_not_500_and_recovers(clean_faults: Stack) -> None:
    stack = clean_faults
    with ArchivistClient(stack.api_url, timeout=30) as api:
        api.login()
        vod = api.create_vod()
        stack.faults.disable("postgres")
        try:
            for call in (
                lambda: api.request("GET", "/api/vods"),
                lambda: api.request("POST", "/api/vods", json={"title": "t", "file_name": "f"}),
                lambda: api.request("PATCH", f"/api/vods/{vod['id']}", json={"title": "u"}),
                lambda: api.request(
                    "POST", "/api/auth/login", json={"username": "user003", "password": "x"}
                ),
            ):
                response, seconds = timed(call)
                error = assert_error(response, 503, "unavailable")
                assert "database" in str(error["message"])
                assert seconds < MAX_FAILURE_S
            health, seconds = timed(lambda: api.http.get("/api/health"))
            assert health.status_code == 503 and seconds < MAX_FAILURE_S
            checks = health.json()["checks"]
            assert checks["database"]["ok"] is False and checks["redis"]["ok"] is True
        finally:
            stack.faults.enable("postgres")
        wait_until_ok(lambda: api.request("GET", "/api/vods"))
        assert api.http.get("/api/health").status_code == 200
        assert api.create_vod()["status"] == "uploaded"


def test_postgres_black_hole_is_503_within_the_deadline(clean_faults: Stack) -> None:
    stack = clean_faults
    with ArchivistClient(stack.api_url, timeout=30) as api:
        api.login()
        stack.faults.add_toxic("postgres", "timeout", {"timeout": 0}, name="blackhole")
        try:
            response, seconds = timed(lambda: api.request("GET", "/api/vods"))
            assert_error(response, 503, "unavailable")
            assert seconds < MAX_FAILURE_S
        finally:
            stack.faults.remove_toxic("postgres", "blackhole")
        wait_until_ok(lambda: api.request("GET", "/api/vods"))


def test_worker_rides_out_a_postgres_outage(clean_faults: Stack) -> None:
    stack = clean_faults
    with ArchivistClient(stack.api_url, timeout=30) as api:
        api.login()
        stack.faults.disable("postgres")
        try:
            time.sleep(2.0)  # the worker's pool loses its connections meanwhile
        finally:
            stack.faults.enable("postgres")
        wait_until_ok(lambda: api.request("GET", "/api/vods"))
        vod = api.create_vod(title="after a database outage")
        assert api.request("POST", f"/api/vods/{vod['id']}/process").status_code == 202
        assert api.wait_for(vod["id"], {"published", "failed"}, timeout=30)["status"] == "published"


def test_worker_gets_past_a_black_holed_database_mid_job(
    clean_faults: Stack, tmp_path: Path
) -> None:
    """A stage's UPDATE that goes into a black hole does not lose or duplicate the job.
    (With this fault server the held data flows again when the toxic goes, so this passes
    with or without the worker's own per-step deadline; that deadline is for links that
    never come back.)"""
    stack = clean_faults
    stack.restart("worker", env={"ARCHIVIST_CONFIG": str(slow_worker_config(tmp_path))})
    with ArchivistClient(stack.api_url, timeout=30) as api:
        api.login()
        vod = api.create_vod(title="through a black hole")
        assert api.request("POST", f"/api/vods/{vod['id']}/process").status_code == 202
        api.wait_for(vod["id"], {"transcoding"}, timeout=15, poll=0.02)
        stack.faults.add_toxic("postgres", "timeout", {"timeout": 0}, name="blackhole")
        try:
            time.sleep(3.0)  # the stage ends meanwhile; its UPDATE goes into the hole
        finally:
            stack.faults.remove_toxic("postgres", "blackhole")
        done = api.wait_for(vod["id"], {"published", "failed"}, timeout=45)
    assert done["status"] == "published", done
    assert_published_once(stack, done)

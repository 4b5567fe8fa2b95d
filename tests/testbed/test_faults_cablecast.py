"""Cablecast down: shows and health answer 503, publishing waits with back-off and
resumes (exactly once) when Cablecast is back."""

from __future__ import annotations

import time
import uuid

from testbed.api.client import ArchivistClient
from testbed.stack import Stack
from tests.conftest import retrying_503

from .test_api_auth import assert_error
from .test_faults_postgres import MAX_FAILURE_S, timed, wait_until_ok
from .test_worker_flow import assert_published_once


def test_cablecast_down_delays_publishing_which_resumes_exactly_once(
    clean_faults: Stack,
) -> None:
    stack = clean_faults
    with ArchivistClient(stack.api_url, timeout=30) as api:
        retrying_503(api.login)  # set-up: a loaded box may 503 it
        vod = api.create_vod(title="published after an outage")
        stack.faults.disable("cablecast")
        try:
            shows, seconds = timed(
                lambda: api.request("GET", "/api/shows", params={"q": uuid.uuid4().hex})
            )
            assert "cablecast" in str(assert_error(shows, 503, "unavailable")["message"])
            assert seconds < MAX_FAILURE_S
            health = api.http.get("/api/health")
            assert health.status_code == 503
            assert health.json()["checks"]["cablecast"]["ok"] is False
            assert api.request("POST", f"/api/vods/{vod['id']}/process").status_code == 202
            api.wait_for(vod["id"], {"publishing"}, timeout=15)
            time.sleep(2.0)
            assert api.get_vod(vod["id"])["status"] == "publishing"  # retrying, not failed
        finally:
            stack.faults.enable("cablecast")
        done = api.wait_for(vod["id"], {"published", "failed"}, timeout=30)
        assert done["status"] == "published", done
        assert_published_once(stack, done)
        wait_until_ok(lambda: api.http.get("/api/health"))

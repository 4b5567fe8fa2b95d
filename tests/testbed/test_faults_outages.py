"""What holds for either datastore link: a black hole is a quick 503, not a hang, and the
worker comes through an outage of either and publishes the next job."""

from __future__ import annotations

import time

import pytest

from testbed.api.client import ArchivistClient
from testbed.stack import Stack
from tests.conftest import retrying_503

from .test_api_auth import assert_error
from .test_faults_postgres import MAX_FAILURE_S, timed, wait_until_ok

LINKS = ["postgres", "redis"]


@pytest.mark.parametrize("link", LINKS)
def test_a_black_holed_link_is_503_within_the_deadline(clean_faults: Stack, link: str) -> None:
    stack = clean_faults
    with ArchivistClient(stack.api_url, timeout=30) as api:
        retrying_503(api.login)  # set-up: a loaded box may 503 it
        stack.faults.add_toxic(link, "timeout", {"timeout": 0}, name="blackhole")
        try:
            response, seconds = timed(lambda: api.request("GET", "/api/vods"))
            assert_error(response, 503, "unavailable")
            assert seconds < MAX_FAILURE_S
        finally:
            stack.faults.remove_toxic(link, "blackhole")
        wait_until_ok(lambda: api.request("GET", "/api/vods"))


@pytest.mark.parametrize("link", LINKS)
def test_the_worker_rides_out_an_outage(clean_faults: Stack, link: str) -> None:
    stack = clean_faults
    with ArchivistClient(stack.api_url, timeout=30) as api:
        retrying_503(api.login)  # set-up: a loaded box may 503 it
        stack.faults.disable(link)
        try:
            time.sleep(2.0)  # the worker's connections to it are lost meanwhile
        finally:
            stack.faults.enable(link)
        wait_until_ok(lambda: api.request("GET", "/api/vods"))
        vod = api.create_vod(title=f"after a {link} outage")
        assert api.request("POST", f"/api/vods/{vod['id']}/process").status_code == 202
        assert api.wait_for(vod["id"], {"published", "failed"}, timeout=30)["status"] == "published"

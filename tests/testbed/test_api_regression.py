"""The regression switch: ARCHIVIST_REGRESSION=slow-list makes listing clearly slower,
=no-cache makes reads skip Redis, and /api/health says which one is on."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import httpx

from faults.embedded import free_port
from testbed.api.client import ArchivistClient
from testbed.stack import Stack
from testbed.stack_settings import REPO_ROOT
from tests.conftest import process_group, retrying_503, wait_until_healthy

ROUNDS = 25


@contextmanager
def companion_api(stack: Stack, env: dict[str, str], log_path: Path) -> Iterator[str]:
    """A second API process of the stack (same database, Redis and Cablecast, through the
    same proxies) with `env` on top of the stack's app env, on a port of its own; yields its
    URL once healthy, stopped at the end.

    Beside the stack's own API, a regression can be measured against the normal app at the
    same moment: on a busy machine, two runs one after the other may meet different loads.
    """
    port = free_port(stack.settings.host)
    argv = [sys.executable, "-m", "testbed.api", "--host", stack.settings.host]
    argv += ["--port", str(port)]
    url = f"http://{stack.settings.host}:{port}"
    with (
        log_path.open("ab") as log,
        process_group(
            argv, cwd=REPO_ROOT, env=stack.app_env | env, stdin=subprocess.DEVNULL,
            stdout=log, stderr=subprocess.STDOUT,
        ) as proc,
    ):  # fmt: skip

        def gone() -> str:
            if proc.poll() is None:
                return ""
            return f"the API exited: {log_path.read_text()[-3000:]}"

        wait_until_healthy(url, stack.settings.timeouts["api"], gone)  # the stack's own bound
        yield url


def list_ms(api: ArchivistClient) -> float:
    """Milliseconds one page of 50 took (a 503, a pool wait on a loaded box, is not a
    sample: the page is asked for again)."""

    def page() -> tuple[httpx.Response, float]:
        start = time.perf_counter()
        response = api.request("GET", "/api/vods", params={"limit": "50"})
        return response, (time.perf_counter() - start) * 1000

    response, took = page()
    deadline = time.monotonic() + 60
    while response.status_code == 503 and time.monotonic() < deadline:
        time.sleep(0.2)
        response, took = page()
    assert response.status_code == 200, response.text
    return took


def test_slow_list_makes_listing_at_least_twice_as_slow(
    clean_faults: Stack, tmp_path: Path
) -> None:
    """The stack's API and one with slow-list, listed in turn, so both medians are taken
    under the same load whatever else the machine does."""
    stack = clean_faults
    slow_env = {"ARCHIVIST_REGRESSION": "slow-list"}
    with (
        companion_api(stack, slow_env, tmp_path / "api-slow-list.log") as slow_url,
        ArchivistClient(stack.api_url, timeout=30) as normal_api,
        ArchivistClient(slow_url, timeout=30) as slow_api,
    ):
        retrying_503(normal_api.login)
        retrying_503(slow_api.login)
        assert normal_api.http.get("/api/health").json()["regression"] != "slow-list"
        assert slow_api.http.get("/api/health").json()["regression"] == "slow-list"
        for n in range(60):  # enough rows that a per-item query shows
            retrying_503(partial(normal_api.create_vod, title=f"regression row {n}"))
        normal: list[float] = []
        slow: list[float] = []
        for n in range(ROUNDS + 5):  # the first 5 rounds warm both up
            pair = (normal_api, slow_api) if n % 2 else (slow_api, normal_api)
            times = {id(api): list_ms(api) for api in pair}  # which goes first alternates
            if n >= 5:
                normal.append(times[id(normal_api)])
                slow.append(times[id(slow_api)])
    normal_ms, slow_ms = statistics.median(normal), statistics.median(slow)
    print(f"list median: normal {normal_ms:.1f} ms, slow-list {slow_ms:.1f} ms")
    assert slow_ms >= 2 * normal_ms, f"slow-list {slow_ms:.1f} ms vs normal {normal_ms:.1f} ms"


def test_no_cache_reads_skip_redis(clean_faults: Stack) -> None:
    stack = clean_faults
    stack.restart("api", env={"ARCHIVIST_REGRESSION": "no-cache"})
    with ArchivistClient(stack.api_url, timeout=30) as api:
        retrying_503(api.login)  # set-up: a loaded box may 503 it
        assert api.http.get("/api/health").json()["regression"] == "no-cache"
        vod = api.create_vod()
        for _ in range(3):
            response = api.request("GET", f"/api/vods/{vod['id']}")
            assert response.status_code == 200 and response.headers["X-Cache"] == "miss"

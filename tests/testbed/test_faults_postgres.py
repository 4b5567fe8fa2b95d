"""PostgreSQL down or black-holed: the API answers 503 quickly and recovers by itself."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
import psycopg

from testbed.api.client import ArchivistClient
from testbed.api.settings import AppConfig
from testbed.stack import Stack
from tests.conftest import retrying_503

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
        retrying_503(api.login)  # set-up: a loaded box may 503 it
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
        retrying_503(api.login)  # set-up: a loaded box may 503 it
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


# Fault cycles for the connection bound: each cuts or stalls the links the pools hold.
CYCLES = [
    ("disable", {}),
    ("timeout", {"timeout": 0}),
    ("reset_peer", {"timeout": 0}),
    ("latency", {"latency": 2500}),
]


LEAK_SETTLE_S = 15.0  # for closing connections to be gone from both ends


def client_backends(stack: Stack) -> int:
    """Client connections PostgreSQL serves, this audit's own aside."""
    with psycopg.connect(stack.database_url, connect_timeout=5, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
        ).fetchone()
    assert row is not None
    return int(row[0])


def app_connections(stack: Stack) -> int:
    """Open connections of the API and workers to the postgres proxy: what their pools hold."""
    port = stack.settings.proxy_ports["postgres"]
    return sum(
        1
        for name, pid in stack.pids().items()
        if name == "api" or name.startswith("worker")
        for c in psutil.Process(pid).net_connections("tcp")
        if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED
    )


def test_database_connections_stay_within_the_pools_through_fault_cycles(
    clean_faults: Stack,
) -> None:
    """Outages, black holes, resets and slowness under load: no connection outlives its pool.

    Every backend must be held by the API's pool or a worker's. A leak shows up as one of:
    pools holding more than their maximum (a pool losing count of a connection), or
    backends that no app connection stands behind (a proxy keeping the server side of a
    link whose client went away).
    """
    stack = clean_faults
    bound = CONFIG.database.pool_max_size
    bound += stack.settings.workers * (CONFIG.worker.concurrency + 1)  # testbed.worker's pool
    stop = threading.Event()

    def load(n: int) -> None:
        with ArchivistClient(stack.api_url, timeout=10) as api:
            for _ in range(10_000):  # bounded; ends with the test
                if stop.is_set():
                    return
                with contextlib.suppress(httpx.HTTPError):  # errors are expected mid-fault
                    api.http.get("/api/health")
                    if api.token is None:
                        api.login(f"user{n:03d}")
                    api.request("POST", "/api/vods", json={"title": "load", "file_name": "f"})

    loaders = [threading.Thread(target=load, args=(n,), daemon=True) for n in range(10, 22)]
    for thread in loaders:
        thread.start()
    seen = []
    try:
        for kind, attributes in CYCLES:
            if kind == "disable":
                stack.faults.disable("postgres")
            else:
                stack.faults.add_toxic("postgres", kind, attributes, name="cycle")
            time.sleep(2.5)
            stack.reset_faults()
            wait_until_ok(lambda: httpx.get(f"{stack.api_url}/api/health", timeout=10))
            seen.append((client_backends(stack), app_connections(stack)))
    finally:
        stop.set()
        for thread in loaders:
            thread.join(15)
    print(f"\n(backends, app connections) after each fault cycle: {seen} (pools' max {bound})")
    assert max(max(pair) for pair in seen) <= bound, seen
    # Connections being closed right now are not leaks: PostgreSQL ends a backend a moment
    # after its client went away (later still on a loaded box). A leaked one never ends.
    deadline = time.monotonic() + LEAK_SETTLE_S
    backends, held = client_backends(stack), app_connections(stack)
    while backends > held and time.monotonic() < deadline:
        time.sleep(0.2)
        backends, held = client_backends(stack), app_connections(stack)
    assert backends <= held, (
        f"{backends} backends, only {held} held by the app's pools after {LEAK_SETTLE_S:.0f} s"
    )

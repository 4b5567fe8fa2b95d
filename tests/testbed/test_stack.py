"""The stack orchestrator with real processes: start, health, proxies, watchdog, clean stop."""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil
import psycopg
import pytest
import redis

from faults.client import FaultClient
from faults.embedded import embedded_fault_server
from testbed.guardian import PG_CTL_TIMEOUT_S, STOP_GRACE_S, Record, StackRecord, stop_leftovers
from testbed.ports import free_ports, port_is_free
from testbed.postgres import EmbeddedPostgres
from testbed.processes import ManagedProcess, StackError
from testbed.redis_server import EmbeddedRedis
from testbed.stack import (
    WATCH_INTERVAL,
    Stack,
    StackSettings,
    running_stack,
    start_stack,
    temporary_state_dir,
)
from testbed.stack_settings import REPO_ROOT
from tests.conftest import wait_until_healthy

T = TypeVar("T")
DEPENDENCIES = ("postgres", "redis", "faults", "cablecast")


def start_bound_s(settings: StackSettings) -> float:
    """The longest start the stack's own [timeouts] (config/stack.toml) allow: its
    dependencies are spawned together (the slowest one's bound holds for all), then the
    API, then the workers (spawned together, each bounded by the API's timeout). A start
    over this took longer than its parts may: it hung outside their health waits (port
    checks, creating the database, populating the proxies). Unloaded, a start takes a few
    seconds; the figure is recorded for each run, to follow it over time."""
    t = settings.timeouts
    workers = t["api"] if settings.workers > 0 else 0.0
    return max(t[name] for name in DEPENDENCIES if name in t) + t["api"] + workers


# Stack.stop: the apps, then Redis and PostgreSQL, each group SIGTERMed at once and given
# ManagedProcess.stop's timeout before SIGKILL; plus the watchdog's round and the CLI's exit
# (its interpreter, the log tail it prints) on a loaded 2-core box.
STOP_TIMEOUT_S = float(inspect.signature(ManagedProcess.stop).parameters["timeout"].default)
WATCHDOG_STOP_BOUND_S = WATCH_INTERVAL + 2 * STOP_TIMEOUT_S + 10.0
# A hang guard for a whole CLI start: what the stack itself allows, plus the interpreter
# start and imports on a loaded 2-core box (a start that fails exits, seen at once).
CLI_START_BOUND_S = start_bound_s(StackSettings.from_config()) + 30.0


def health(stack: Stack) -> httpx.Response:
    return httpx.get(f"{stack.api_url}/api/health", timeout=10.0)


def healthy(stack: Stack) -> dict[str, Any]:
    """The body of a 200 from /api/health, polled for: on a loaded box one check may wait
    out the API's 2 s database pool (or meet the reconnect after the previous test's outage
    on the shared stack) and answer 503 once; "up" means it answers 200 in bounded time."""
    body: dict[str, Any] = wait_until_healthy(stack.api_url).json()
    return body


def wait_for(condition: Callable[[], T], timeout: float, what: str, interval: float = 0.2) -> T:
    """Poll `condition` until it returns a truthy value; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"{what} not within {timeout:.0f} s (last: {last!r})")
    raise AssertionError  # unreachable: pytest.fail raises


# -- the session stack ------------------------------------------------------------------


def test_stack_is_healthy_within_bound(
    stack: Stack, record_property: Callable[[str, object], None]
) -> None:
    assert stack.startup_seconds is not None
    print(f"\nstack start to healthy: {stack.startup_seconds:.2f} s")
    record_property("stack_startup_s", round(stack.startup_seconds, 2))
    bound = start_bound_s(stack.settings)
    record_property("stack_startup_bound_s", bound)
    assert stack.startup_seconds < bound, f"{stack.startup_seconds:.1f} s, bound {bound:.0f} s"

    body = healthy(stack)
    assert body["status"] == "ok", body
    assert all(body["checks"][name]["ok"] for name in ("database", "redis", "cablecast")), body
    assert httpx.get(f"{stack.cablecast_url}/systeminfo", timeout=5).status_code == 200
    with psycopg.connect(stack.database_url, connect_timeout=5) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("archivist",)
    assert redis.Redis.from_url(stack.redis_url).ping()
    pids = stack.pids()
    assert {"postgres", "redis", "faults", "cablecast", "api", "worker"} <= set(pids)
    assert all(psutil.pid_exists(pid) for pid in pids.values())


def test_proxies_point_at_the_real_services(stack: Stack) -> None:
    s = stack.settings
    proxies = stack.faults.proxies()
    expected = {
        "postgres": s.ports["postgres"],
        "redis": s.ports["redis"],
        "cablecast": s.ports["cablecast"],
    }
    for name, upstream_port in expected.items():
        assert proxies[name].upstream == f"127.0.0.1:{upstream_port}"
        assert proxies[name].listen_port == s.proxy_ports[name]
        assert proxies[name].enabled


@pytest.mark.parametrize(
    ("link", "check"), [("postgres", "database"), ("redis", "redis"), ("cablecast", "cablecast")]
)
def test_api_reaches_each_dependency_only_through_its_proxy(
    clean_faults: Stack, link: str, check: str
) -> None:
    stack = clean_faults
    stack.faults.disable(link)

    def dependency_down() -> bool:
        response = health(stack)
        return response.status_code == 503 and not response.json()["checks"][check]["ok"]

    wait_for(dependency_down, 20, f"/api/health reporting {check} down")
    # The dependency itself is fine: only the link the API uses is cut.
    if link == "postgres":
        with psycopg.connect(stack.database_url, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    elif link == "redis":
        assert redis.Redis.from_url(stack.redis_url).ping()
    else:
        assert httpx.get(f"{stack.cablecast_url}/systeminfo", timeout=5).status_code == 200
    stack.faults.enable(link)
    healthy(stack)  # back to 200


def test_app_processes_get_only_proxied_dependency_urls(stack: Stack) -> None:
    proxy = stack.settings.proxy_ports
    expected_ports = {
        "ARCHIVIST_DATABASE_URL": proxy["postgres"],
        "ARCHIVIST_REDIS_URL": proxy["redis"],
        "ARCHIVIST_CABLECAST_URL": proxy["cablecast"],
    }
    for part in ("api", "worker"):
        env = psutil.Process(stack.pids()[part]).environ()
        for name, port in expected_ports.items():
            assert f"127.0.0.1:{port}/" in env[name], (part, name, env[name])


def test_killed_app_process_is_restarted_without_stopping_the_stack(clean_faults: Stack) -> None:
    stack = clean_faults
    old_pid = stack.pids()["api"]
    stack.kill("api")
    assert not psutil.pid_exists(old_pid) or psutil.Process(old_pid).status() == "zombie"
    with pytest.raises(httpx.TransportError):
        health(stack)
    time.sleep(1.0)  # several watchdog rounds: a deliberate kill must not stop the stack
    assert not stack.stopped.is_set(), stack.failure
    stack.start("api")
    assert healthy(stack)["status"] == "ok"
    assert stack.pids()["api"] != old_pid


def test_failed_restart_is_an_error_and_leaves_the_stack_up(clean_faults: Stack) -> None:
    stack = clean_faults
    with pytest.raises(StackError, match=r"api exited with code \d+ while starting"):
        stack.restart("api", env={"ARCHIVIST_REGRESSION": "no-such-regression"})
    time.sleep(1.0)  # several watchdog rounds
    assert not stack.stopped.is_set(), stack.failure
    assert stack.app_parts_needing_reset() == ["api"]  # clean_faults brings it back


def test_restart_with_env_applies_it_until_reset(clean_faults: Stack) -> None:
    stack = clean_faults
    stack.restart("api", env={"ARCHIVIST_REGRESSION": "slow-list"})
    assert health(stack).json()["regression"] == "slow-list"
    assert stack.app_parts_needing_reset() == ["api"]


def test_reset_faults_restores_every_proxy(clean_faults: Stack) -> None:
    stack = clean_faults
    before = stack.faults.proxies()
    stack.faults.add_toxic("postgres", "latency", {"latency": 500}, name="slow")
    stack.faults.disable("redis")
    stack.faults.delete_proxy("cablecast")
    stack.reset_faults()
    after = stack.faults.proxies()
    assert sorted(after) == sorted(before)
    for name, proxy in after.items():
        assert proxy.enabled and proxy.upstream == before[name].upstream
        assert stack.faults.toxics(name) == []
    # The API's pools reconnect on their own once the links are back.
    healthy(stack)  # back to 200


def test_kill_refuses_dependencies(stack: Stack) -> None:
    with pytest.raises(ValueError, match="not an app process"):
        stack.kill("postgres")


@pytest.mark.skipif(os.geteuid() != 0, reason="only meaningful when the tests run as root")
def test_postgres_runs_unprivileged_when_root(stack: Stack) -> None:
    leader = psutil.Process(stack.pids()["postgres"])
    servers = [p for p in leader.children(recursive=True) if p.name() == "postgres"]
    assert servers, "no postgres process under the runuser leader"
    assert {p.username() for p in servers} == {"pgserver"}


# -- separate stacks and the CLI ----------------------------------------------------------


@pytest.fixture
def state_root() -> Iterator[Path]:
    with temporary_state_dir() as path:
        yield path


def test_taken_port_is_a_clear_error_before_anything_starts(state_root: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        settings = StackSettings.from_config(free_ports=True, state_dir=state_root / "state")
        settings.ports["api"] = port
        started = time.monotonic()
        with pytest.raises(StackError, match=rf"port {port} .*wanted by api.* in use"):
            Stack(settings).up()
        # Before any part's health wait could have run out: nothing was waited for.
        assert time.monotonic() - started < min(settings.timeouts.values())
        assert not (state_root / "state" / "logs").exists(), "something was started"

        cli = subprocess.run(
            [
                *(sys.executable, "-m", "testbed", "up", "--free-ports"),
                *("--redis-port", str(port), "--state-dir", str(state_root / "cli")),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO_ROOT,
        )
    assert cli.returncode == 2
    assert f"port {port}" in cli.stderr and "redis" in cli.stderr
    assert "Traceback" not in cli.stderr


def test_free_ports_start_picks_again_when_one_was_taken(state_root: Path) -> None:
    settings = StackSettings.from_config(free_ports=True, state_dir=state_root / "state")
    with socket.socket() as thief:  # takes a picked port, as a busy CI box may
        thief.bind(("127.0.0.1", settings.ports["cablecast"]))
        thief.listen(1)
        stack = start_stack(settings)
        try:
            assert stack.settings.ports["cablecast"] != settings.ports["cablecast"]
            assert healthy(stack)["status"] == "ok"
        finally:
            stack.stop()


def test_bad_config_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "stack.toml"
    default = (REPO_ROOT / "config" / "stack.toml").read_text()
    config.write_text(default.replace("api = 8000", 'api = "eighty"'))
    with pytest.raises(StackError, match=r"stack.toml: \[ports\] api = 'eighty': must be a port"):
        StackSettings.from_config(config)
    config.write_text(default.replace("redis = 16379\n", ""))
    with pytest.raises(StackError, match=r"\[ports\] lacks redis"):
        StackSettings.from_config(config)
    config.write_text("[portz]\n")
    with pytest.raises(StackError, match=r"unknown key.*portz"):
        StackSettings.from_config(config)


def still_running(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Those of `procs` still running once none is, or after `timeout`. A zombie has ended
    (only its entry waits to be reaped by whoever adopted it), so it does not hold the wait."""

    def running(proc: psutil.Process) -> bool:
        try:
            return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    deadline = time.monotonic() + timeout
    while (alive := [p for p in procs if running(p)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive


class CliStack:
    """`python -m testbed up` as a child, with every process it started, for leak checks."""

    def __init__(self, state_dir: Path, env: dict[str, str] | None = None) -> None:
        self.state_dir = state_dir
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "testbed", "up", "--free-ports", "--state-dir", str(state_dir)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO_ROOT,
            env=env,
            start_new_session=True,
        )
        self.descendants: list[psutil.Process] = []

    def wait_ready(self) -> dict[str, int]:
        pids_file = self.state_dir / "pids.json"

        def ready() -> bool:
            if self.proc.poll() is not None:
                out, err = self.proc.communicate()
                pytest.fail(f"testbed up exited {self.proc.returncode}:\n{out}\n{err}")
            record = StackRecord.read(pids_file)  # None: not written yet
            return record is not None and record.ready

        wait_for(ready, CLI_START_BOUND_S, "the CLI stack to be ready")
        self.descendants = psutil.Process(self.proc.pid).children(recursive=True)
        return self.recorded_pids()

    def recorded_pids(self) -> dict[str, int]:
        record = StackRecord.read(self.state_dir / "pids.json")
        assert record is not None
        return {name: rec.pid for name, rec in record.children.items()}

    def finish(self, timeout: float) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err

    def leftovers(self) -> list[psutil.Process]:
        return still_running(self.descendants, timeout=5)

    def cleanup(self) -> None:
        """Whatever the test did: nothing of this stack may outlive it."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        for p in self.leftovers():
            p.kill()


@pytest.fixture
def cli_stack(state_root: Path) -> Iterator[CliStack]:
    cli = CliStack(state_root / "state")
    try:
        yield cli
    finally:
        cli.cleanup()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_cli_signal_stops_everything(cli_stack: CliStack, sig: signal.Signals) -> None:
    cli_stack.wait_ready()
    assert len(cli_stack.descendants) >= 6
    status = subprocess.run(
        [sys.executable, "-m", "testbed", "status", "--state-dir", str(cli_stack.state_dir)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO_ROOT,
    )
    assert status.returncode == 0 and status.stdout.count("running") == 6, status.stdout
    assert "owner" in status.stdout and " up" in status.stdout
    cli_stack.proc.send_signal(sig)
    code, out, err = cli_stack.finish(timeout=60)
    assert code == 0, err
    assert "stack ready in" in out and "http://127.0.0.1:" in out
    assert cli_stack.leftovers() == []
    assert not (cli_stack.state_dir / "pids.json").exists()


def test_cli_sigint_during_start_up_stops_what_had_started(cli_stack: CliStack) -> None:
    pids_file = cli_stack.state_dir / "pids.json"

    def dependencies_up() -> dict[str, int] | None:
        record = StackRecord.read(pids_file)  # None: not yet written
        pids = {name: rec.pid for name, rec in record.children.items()} if record else {}
        return pids if "postgres" in pids else None

    pids = wait_for(dependencies_up, CLI_START_BOUND_S, "postgres to be up")
    assert pids is not None
    cli_stack.descendants = psutil.Process(cli_stack.proc.pid).children(recursive=True)
    cli_stack.proc.send_signal(signal.SIGINT)
    code, _, err = cli_stack.finish(timeout=60)
    # Usually the API is not up yet (130: start abandoned); on a fast day it is (0).
    print(f"\nSIGINT during start-up: exit code {code}")
    assert code in (0, 130), err
    assert "Traceback" not in err
    assert not any(psutil.pid_exists(pid) for pid in pids.values())
    assert cli_stack.leftovers() == []


@pytest.mark.parametrize("part", ["redis", "api"])
def test_watchdog_stops_the_stack_when_a_part_dies(cli_stack: CliStack, part: str) -> None:
    pids = cli_stack.wait_ready()
    killed_at = time.monotonic()
    os.kill(pids[part], signal.SIGKILL)
    code, _, err = cli_stack.finish(timeout=WATCHDOG_STOP_BOUND_S + 30)
    took = time.monotonic() - killed_at
    print(f"\nwatchdog: stack stopped {took:.1f} s after {part} was killed")
    assert code == 1
    assert f"{part} (pid {pids[part]}) died unexpectedly" in err
    assert "Last lines of" in err  # the dead part's log tail, to see why
    assert took < WATCHDOG_STOP_BOUND_S, f"{took:.1f} s"
    assert cli_stack.leftovers() == []


# From the orchestrator's SIGKILL to nothing of its stack left: the guardian's own bounds
# (pg_ctl stop, its subprocess timeout included, then SIGTERM's grace, then SIGKILL's
# reaping), plus slack for a loaded 2-core box. A hang guard: the wait ends when all are gone.
ORPHAN_BOUND_S = (PG_CTL_TIMEOUT_S + 5) + 2 * STOP_GRACE_S + 5.0


def listening_ports(procs: list[psutil.Process]) -> set[int]:
    ports = set()
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            ports |= {
                c.laddr.port for c in proc.net_connections("tcp") if c.status == psutil.CONN_LISTEN
            }
    return ports


def test_sigkill_of_the_orchestrator_leaves_nothing_running(cli_stack: CliStack) -> None:
    cli_stack.wait_ready()
    ports = listening_ports(cli_stack.descendants)
    assert len(ports) >= 8, ports  # api, fault api, 3 proxies, postgres, redis, cablecast
    os.kill(cli_stack.proc.pid, signal.SIGKILL)  # no handler, no atexit: only the guardian
    killed_at = time.monotonic()
    cli_stack.finish(timeout=10)
    alive = still_running(cli_stack.descendants, timeout=ORPHAN_BOUND_S)
    took = time.monotonic() - killed_at
    print(f"\norchestrator SIGKILLed: its stack was gone {took:.1f} s later")
    assert alive == []
    state = str(cli_stack.state_dir)
    assert not [
        p.info
        for p in psutil.process_iter(["pid", "cmdline"])
        if state in " ".join(p.info["cmdline"] or [])
    ]
    assert not (cli_stack.state_dir / "postgres" / "data" / "postmaster.pid").exists()
    assert [port for port in ports if not port_is_free("127.0.0.1", port)] == []
    guardian_log = (cli_stack.state_dir / "logs" / "guardian.log").read_text()
    assert "orchestrator died" in guardian_log and "stopped: " in guardian_log, guardian_log


def test_down_stops_what_a_killed_stack_and_its_guardian_left(cli_stack: CliStack) -> None:
    cli_stack.wait_ready()
    ports = listening_ports(cli_stack.descendants)
    record = StackRecord.read(cli_stack.state_dir / "pids.json")
    assert record is not None and record.guardian is not None
    os.kill(record.guardian.pid, signal.SIGKILL)  # both lines of defence gone but the file
    os.kill(cli_stack.proc.pid, signal.SIGKILL)
    cli_stack.finish(timeout=10)
    assert record.children["api"].process() is not None, "left running, as the test needs"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "testbed", *args, "--state-dir", str(cli_stack.state_dir)]
        return subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)

    assert "dead (run: down)" in cli("status").stdout
    down = cli("down")
    assert down.returncode == 0, down.stderr
    assert "stopped what it left: " in down.stdout and "postgres" in down.stdout, down.stdout
    assert still_running(cli_stack.descendants, timeout=ORPHAN_BOUND_S) == []
    assert [port for port in ports if not port_is_free("127.0.0.1", port)] == []
    assert not (cli_stack.state_dir / "pids.json").exists()
    again = cli("down")
    assert again.returncode == 0 and "nothing recorded" in again.stdout


def test_leftovers_are_stopped_only_when_pid_and_start_time_match(state_root: Path) -> None:
    sleepers = [subprocess.Popen(["sleep", "60"], start_new_session=True) for _ in range(2)]
    try:
        ours, recycled = (Record.of(f"s{n}", p.pid) for n, p in enumerate(sleepers))
        assert ours is not None and recycled is not None
        # Same pid, another start time: a process that got a dead child's pid.
        recycled = Record(recycled.name, recycled.pid, recycled.create_time - 100)
        dead_owner = Record("orchestrator", os.getpid(), 0.0)
        path = state_root / "pids.json"
        StackRecord(dead_owner, {"s0": ours, "s1": recycled}).write(path)
        assert stop_leftovers(state_root) == ["s0"]
        assert sleepers[0].wait(5) is not None
        assert sleepers[1].poll() is None
        assert not path.exists()

        live_owner = Record.of("orchestrator", os.getpid())
        assert live_owner is not None
        StackRecord(live_owner, {"s1": recycled}).write(path)
        with pytest.raises(StackError, match=r"already running from .*python -m testbed down"):
            stop_leftovers(state_root)
        assert path.exists()
    finally:
        for proc in sleepers:
            proc.kill()
            proc.wait(5)


def test_up_while_a_stack_runs_says_so_and_starts_nothing(state_root: Path) -> None:
    """The check comes first: no "starting the stack" line before the refusal."""
    owner = Record.of("orchestrator", os.getpid())  # a live owner: this test process
    assert owner is not None
    StackRecord(owner, {}).write(state_root / "pids.json")
    answer = subprocess.run(
        [sys.executable, "-m", "testbed", "up", "--free-ports", "--state-dir", str(state_root)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=60,
    )
    assert answer.returncode == 2
    assert answer.stdout == ""
    assert answer.stderr.splitlines() == [
        f"error: a stack is already running from {state_root} (pid {os.getpid()}); "
        f"stop it first: python -m testbed down --state-dir {state_root}"
    ]
    assert (state_root / "pids.json").exists()  # left as it was


def test_existing_servers_are_used_and_left_running(state_root: Path) -> None:
    """DATABASE_URL, REDIS_URL and TOXIPROXY_URL: the stack starts none of its own."""
    pg_port, redis_port = free_ports("127.0.0.1", 2)
    external_pg = EmbeddedPostgres(state_root / "ext-pg", "127.0.0.1", pg_port, "postgres")
    external_redis = EmbeddedRedis(state_root / "ext-redis", "127.0.0.1", redis_port)
    with ExitStack() as cleanup:
        cleanup.callback(external_pg.stop)
        cleanup.callback(external_redis.stop)
        external_pg.start()
        external_redis.start()
        fault_url = cleanup.enter_context(embedded_fault_server())
        # A database the external server lacks: the stack creates it, as it does for ours.
        database_url = f"postgresql://postgres@127.0.0.1:{pg_port}/archivist_ext"
        redis_url = f"redis://127.0.0.1:{redis_port}/3"
        env = {"DATABASE_URL": database_url, "REDIS_URL": redis_url, "TOXIPROXY_URL": fault_url}
        settings = StackSettings.from_config(
            free_ports=True, state_dir=state_root / "state", environ=env
        )
        with running_stack(settings) as stack:
            assert (stack.database_url, stack.redis_url) == (database_url, redis_url)
            assert stack.fault_url == fault_url
            assert set(stack.pids()) == {"cablecast", "api", "worker"}
            assert not (state_root / "state" / "postgres").exists()
            with FaultClient(fault_url) as given:
                proxies = given.proxies()  # on the server we gave it
            assert proxies["postgres"].upstream == f"127.0.0.1:{pg_port}"
            assert proxies["redis"].upstream == f"127.0.0.1:{redis_port}"
            assert healthy(stack)["status"] == "ok"
            with psycopg.connect(database_url, connect_timeout=5) as conn:
                tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
                row = tables.fetchone()
                assert row is not None and row[0] > 0  # the API migrated it
        # Stopping the stack left the servers it did not start alone.
        assert external_pg.process is not None and external_pg.process.running()
        assert redis.Redis.from_url(redis_url).ping()
        with FaultClient(fault_url) as given:
            assert given.version()


def test_services_tool_prints_working_urls_and_stops_clean(state_root: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "testbed.services", str(state_root / "svc")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        urls = dict(proc.stdout.readline().strip().split("=", 1) for _ in range(2))
        with psycopg.connect(urls["DATABASE_URL"], connect_timeout=5) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("archivist",)
        assert redis.Redis.from_url(urls["REDIS_URL"]).ping()
        children = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
        _, alive = psutil.wait_procs(children, timeout=5)
        assert alive == []
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def test_a_port_another_stack_took_between_pick_and_bind_is_not_adopted_but_retried(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two stacks starting side by side picked one PostgreSQL port: the loser must not use
    the winner's server (CI once saw both create `archivist` in one cluster)."""
    import testbed.stack as stack_module

    taken = stack.settings.ports["postgres"]  # a live PostgreSQL of another stack
    checks: list[int] = []
    check_ports_free = stack_module.check_ports_free

    def race_past_the_first_check(host: str, wanted: dict[str, int]) -> None:
        # The first start's check ran before the neighbour bound the port.
        checks.append(len(checks))
        if len(checks) > 1:
            check_ports_free(host, wanted)

    monkeypatch.setattr(stack_module, "check_ports_free", race_past_the_first_check)
    with temporary_state_dir() as state_dir:
        settings = StackSettings.from_config(free_ports=True, state_dir=state_dir)
        settings = dataclasses.replace(settings, ports={**settings.ports, "postgres": taken})
        second = start_stack(settings)
        try:
            assert len(checks) == 2, "the start was retried once"
            assert second.settings.ports["postgres"] != taken
            with psycopg.connect(second.database_url, connect_timeout=5) as conn:
                row = conn.execute("SHOW data_directory").fetchone()
            assert row is not None
            assert Path(row[0]).resolve().is_relative_to(Path(state_dir).resolve()), row
        finally:
            second.stop()

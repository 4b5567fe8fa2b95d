"""The reference Archivist stack: start in order, health-check, watch, and stop every part.

Order: PostgreSQL, Redis, the fault server and the Cablecast simulator start together
(they need nothing from each other); then the fault proxies are populated; then the API
(which migrates and seeds), then the workers. The API and workers reach all three
dependencies only through the proxies, so every fault hits a real link; the Stack keeps
direct URLs for audits.

A watchdog thread stops the whole stack when a part dies that nobody meant to stop, so a
run never measures a half-dead stack by accident. A guardian process (testbed.guardian)
stops every child when the orchestrator itself dies, even by SIGKILL.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis

from faults.client import FaultClient, FaultServerError
from testbed import app_parts, readiness
from testbed import postgres as pg
from testbed.app_parts import CABLECAST_BASE
from testbed.guardian import Guardian, Record, StackRecord, stop_leftovers
from testbed.hosted import launch as hosted_launch
from testbed.hosted.fixtures import FIXTURES_FILE, prepare_fixtures
from testbed.ports import check_ports_free
from testbed.postgres import EmbeddedPostgres
from testbed.processes import ManagedProcess, StackError, wait_healthy
from testbed.redis_server import EmbeddedRedis
from testbed.stack_proxies import proxy_config
from testbed.stack_settings import REPO_ROOT, StackSettings
from testbed.state_dir import temporary_state_dir

__all__ = [
    "Stack",
    "StackError",
    "StackSettings",
    "running_stack",
    "start_stack",
    "temporary_state_dir",
]

APP_PARTS = ("api", "worker", "cablecast")
WATCH_INTERVAL = 0.2  # s between watchdog checks

_live_stacks: set[Stack] = set()


@dataclass
class _Part:
    """One child of the stack: how to (re)spawn it and how to tell it is healthy."""

    process: ManagedProcess
    check: Callable[[], bool]
    timeout: float
    expected: bool = False  # True while it should be running: the watchdog's view
    overrides: dict[str, str] = field(default_factory=dict)  # env given to start()
    base_env: dict[str, str] | None = None


class Stack:
    """A running stack; build it with `running_stack(settings)`."""

    api_url: str
    cablecast_url: str
    fault_url: str
    database_url: str
    redis_url: str

    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self.state_dir = settings.state_dir.resolve()
        self.log_dir = self.state_dir / "logs"
        host, ports = settings.host, settings.ports
        self.hosted = settings.hosted_app()
        scheme = "https" if self.hosted is not None and self.hosted.tls else "http"
        self.api_url = f"{scheme}://{host}:{ports['api']}"
        self.cablecast_url = f"http://{host}:{ports['cablecast']}{CABLECAST_BASE}"
        self.fault_url = settings.toxiproxy_url or f"http://{host}:{ports['fault_api']}"
        self.startup_seconds: float | None = None
        self.failure: str | None = None  # why the watchdog stopped the stack
        self.stopped = threading.Event()
        self._parts: dict[str, _Part] = {}
        self._postgres: EmbeddedPostgres | None = None
        self._redis: EmbeddedRedis | None = None
        self._lock = threading.RLock()
        self._watchdog: threading.Thread | None = None
        self._faults: FaultClient | None = None
        self._guardian: Guardian | None = None
        self._record = StackRecord(owner=_this_process())
        self.app_env: dict[str, str] = {}
        # <state_dir>/fixtures.json: the ids of the test data seeded for a hosted app
        self.fixtures_path: Path | None = None
        self._proxies: list[dict[str, object]] = []

    # -- public --------------------------------------------------------------------

    @property
    def faults(self) -> FaultClient:
        """Client of the fault server that owns the proxies of this stack."""
        if self._faults is None:
            raise StackError("the fault server is not running")
        return self._faults

    @property
    def pids_file(self) -> Path:
        """Every process this stack started, with its owner's: what `status` and `down` read."""
        return self.state_dir / "pids.json"

    def pids(self) -> dict[str, int]:
        """Process-group leader of every child started by this stack (running or not)."""
        return {
            name: part.process.pid
            for name, part in self._parts.items()
            if part.process.pid is not None
        }

    def log_tail(self, name: str, lines: int = 40) -> str:
        """The last lines of one child's log ("" for a part this stack has not defined)."""
        part = self._parts.get(name)
        return part.process.log_tail(lines) if part is not None else ""

    def kill(self, name: str) -> None:
        """SIGKILL one app process ("api" | "worker" | "cablecast"): a crash, on purpose."""
        part = self._app_part(name)
        with self._lock:
            part.expected = False
        part.process.kill()

    def start(self, name: str, env: dict[str, str] | None = None) -> None:
        """(Re)start one app process, with `env` on top of its usual environment; wait healthy.

        A running one is stopped first. Env given here sticks to the part until it is
        started again without it.
        """
        part = self._app_part(name)
        self._check_alive()
        if part.process.running():
            with self._lock:
                part.expected = False
            part.process.stop()
        part.overrides = dict(env or {})
        base = part.base_env if part.base_env is not None else dict(os.environ)
        part.process.env = base | part.overrides
        self._launch(name)
        try:
            self._wait(name)
        except BaseException:
            # A part that failed to come back is left down, and the caller gets the error
            # (the watchdog does not watch a part until it is healthy); clean_faults tries
            # again with the usual env.
            part.process.kill()
            raise

    def restart(self, name: str, env: dict[str, str] | None = None) -> None:
        """Stop one app process if it runs (gracefully), then start it and wait healthy."""
        self.start(name, env)

    def reset_faults(self) -> None:
        """No toxics, every proxy enabled and pointing where this stack put it.

        Toxiproxy's /reset alone would keep a proxy a test deleted or re-pointed.
        """
        self.faults.reset()
        self.faults.populate(self._proxies)

    def app_parts_needing_reset(self) -> list[str]:
        """App processes that are down or run with a test's env: what `clean_faults` redoes."""
        return [
            name
            for name in self._app_names()
            if not self._parts[name].process.running() or self._parts[name].overrides
        ]

    def stop(self) -> None:
        """Stop everything this stack started, apps first; safe to call twice, any thread."""
        with self._lock:
            if self.stopped.is_set():
                return
            for part in self._parts.values():
                part.expected = False
            apps = [n for n in self._parts if n not in ("redis", "postgres")]
            errors = []
            # Apps first, together, so none of them sees its database vanish mid-shutdown.
            for group in (apps, [n for n in ("redis", "postgres") if n in self._parts]):
                for name in group:
                    self._parts[name].process.request_stop()
                for name in group:
                    try:
                        self._parts[name].process.stop()
                    except StackError as exc:  # pragma: no cover - SIGKILL failed
                        errors.append(str(exc))
            if self._faults is not None:
                self._faults.close()
            if self._guardian is not None and not errors:
                self._guardian.close()  # else it stays and stops the survivors when we exit
            self.pids_file.unlink(missing_ok=True)
            self.stopped.set()
            _live_stacks.discard(self)
        if errors:  # pragma: no cover
            raise StackError("; ".join(errors))

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the stack stops (the watchdog found a dead part); True if it did."""
        return self.stopped.wait(timeout)

    # -- start-up ------------------------------------------------------------------

    def up(self) -> None:
        """Start every part and wait until all are healthy; on failure stop what started."""
        started = time.monotonic()
        settings = self.settings
        # A stack of this state dir whose orchestrator was killed may still hold the ports.
        leftovers = stop_leftovers(self.state_dir)
        if leftovers:
            with contextlib.suppress(OSError):
                print(
                    f"stack: stopped what a dead stack of {self.state_dir} left running: "
                    + ", ".join(leftovers),
                    file=sys.stderr,
                )
        settings = self.settings = app_parts.pin_hosted_ports(settings, self.hosted)
        wanted = settings.wanted_ports()
        if self.hosted is not None and self.hosted.redis_proxy_port and settings.pin_app_redis:
            wanted[f"the redis proxy, where {self.hosted.name} expects Redis"] = wanted.pop(
                "redis proxy"
            )
        check_ports_free(settings.host, wanted)
        venv = app_parts.hosted_venv(settings, self.hosted)
        # A bad proxies.json fails here, before anything has started.
        proxies = self._proxies = proxy_config(settings)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        _live_stacks.add(self)
        self._guardian = Guardian(self.log_dir / "guardian.log")
        self._record.guardian = self._guardian.record()
        try:
            self._up_dependencies()
            self._populate(proxies)
            if venv is not None:
                self._define_hosted(venv)
            else:
                (self.state_dir / FIXTURES_FILE).unlink(missing_ok=True)  # not this app's
                self._define_apps()
            self._launch("api")
            self._wait("api")
            for name in self._app_names():
                if name.startswith("worker"):
                    self._launch(name)
            for name in self._app_names():
                if name.startswith("worker"):
                    self._wait(name)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        self._record.ready = True
        self._write_pids()
        self._watchdog = threading.Thread(target=self._watch, name="stack-watchdog", daemon=True)
        self._watchdog.start()

    def _up_dependencies(self) -> None:
        s = self.settings
        host, ports = s.host, s.ports
        if s.database_url:
            self.database_url = s.database_url
        else:
            self._postgres = EmbeddedPostgres(
                self.state_dir / "postgres",
                host,
                ports["postgres"],
                s.database_name,
                s.postgres_settings,
                log_path=self.log_dir / "postgres.log",
            )
            self.database_url = self._postgres.url
        if s.redis_url:
            self.redis_url = s.redis_url
        else:
            self._redis = EmbeddedRedis(
                self.state_dir / "redis", host, ports["redis"], self.log_dir / "redis.log"
            )
            self.redis_url = self._redis.url

        # Spawn everything that needs nothing else at once; a 2-core box overlaps the waits.
        # The Python children first: their imports run while initdb (first start) works.
        if self._redis is not None:
            self._redis.launch()
            ready = functools.partial(readiness.redis_ready, self.redis_url)
            self._adopt("redis", self._redis.process, ready)
            self._guard("redis")
        if not s.toxiproxy_url:
            argv = [sys.executable, "-m", "faults.server", "--host", host]
            argv += ["--port", str(ports["fault_api"])]
            ready = functools.partial(readiness.faults_ready, self.fault_url)
            self._add("faults", argv, ready, s.timeouts["faults"])
            self._launch("faults")
        argv = [sys.executable, "-m", "testbed.cablecast", "--host", host]
        argv += [
            "--port",
            str(ports["cablecast"]),
            "--state",
            str(self.state_dir / "cablecast.sqlite"),
        ]
        ready = functools.partial(readiness.cablecast_ready, self.cablecast_url)
        self._add("cablecast", argv, ready, s.timeouts["cablecast"])
        self._parts["cablecast"].base_env = dict(os.environ)
        self._launch("cablecast")
        if self._postgres is not None:
            self._postgres.launch()
            ready = functools.partial(readiness.postgres_ready, self._postgres.admin_url)
            self._adopt("postgres", self._postgres.process, ready)
            self._guard(
                "postgres",
                pg_data=str(self._postgres.data_dir),
                run_as=self._postgres.as_user,
            )

        for name in ("postgres", "redis", "faults", "cablecast"):
            if name in self._parts:
                self._wait(name)
        if self._postgres is not None:
            pg.ensure_database(self._postgres.admin_url, s.database_name)
        if s.database_url:
            readiness.external_database_ready(self.database_url)
        if s.redis_url:
            try:
                readiness.redis_ready(self.redis_url)
            except redis.RedisError as exc:
                raise StackError(f"REDIS_URL={s.redis_url}: not reachable: {exc}") from None
        self._faults = FaultClient(self.fault_url)
        try:
            self._faults.version()
        except FaultServerError as exc:
            raise StackError(f"fault server at {self.fault_url} does not answer: {exc}") from None

    def _define_hosted(self, venv: Path) -> None:
        """The real app's web and worker processes, their env through the proxies, its schema."""
        hosted = self.hosted
        assert hosted is not None
        launch = app_parts.prepare_hosted(
            self.settings,
            hosted,
            venv,
            self.state_dir / hosted.name,
            self.database_url,
            self.redis_url,
        )
        self.app_env = launch.env
        hosted_launch.create_schema(launch, self.log_dir / "schema.log")
        app_state = self.state_dir / hosted.name
        self.fixtures_path = prepare_fixtures(
            hosted.name,
            hosted.fixtures,
            self.database_url,
            {target: app_state / folder for target, folder in hosted.mounts.items()},
            REPO_ROOT,
            self.state_dir,
        )
        self._define(app_parts.hosted_apps(launch, self.settings.workers).parts)

    def _define_apps(self) -> None:
        """The reference API and workers; every dependency URL goes through its proxy."""
        apps = app_parts.reference_apps(self.settings, self.database_url, self.redis_url)
        self.app_env = apps.env
        self._define(apps.parts)

    def _define(self, apps: list[app_parts.AppPart]) -> None:
        """Make parts of the app processes, each with the probe that fits it."""
        s = self.settings
        for app in apps:
            self._add(app.name, app.argv, self._api_ready, s.timeouts["api"], cwd=app.cwd)
            part = self._parts[app.name]
            if app.worker:  # its probe looks at the process _add just made
                part.check = readiness.worker_connected(part.process, s.proxy_ports["redis"])
            part.base_env = app.env

    def _api_ready(self) -> bool:
        return readiness.api_ready(self.api_url, self.hosted)

    def _populate(self, proxies: list[dict[str, object]]) -> None:
        try:
            self.faults.populate(proxies)
        except FaultServerError as exc:
            raise StackError(f"could not create the fault proxies: {exc}") from None

    # -- processes -----------------------------------------------------------------

    def _add(
        self,
        name: str,
        argv: list[str],
        check: Callable[[], bool],
        timeout: float,
        cwd: Path = REPO_ROOT,
    ) -> None:
        process = ManagedProcess(name, argv, self.log_dir / f"{name}.log", cwd=cwd)
        self._parts[name] = _Part(process, check, timeout)

    def _adopt(self, name: str, process: ManagedProcess | None, check: Callable[[], bool]) -> None:
        assert process is not None
        self._parts[name] = _Part(process, check, self.settings.timeouts[name])

    def _launch(self, name: str) -> None:
        part = self._parts[name]
        if part.base_env is not None and part.process.env is None:
            part.process.env = part.base_env
        part.process.start()
        self._guard(name)

    def _guard(self, name: str, **extra: str | None) -> None:
        """Tell the guardian about a child just started (the window is one spawn long)."""
        pid = self._parts[name].process.pid
        record = Record.of(name, pid, **extra) if pid is not None else None
        if record is None:
            return
        with self._lock:
            self._record.children[name] = record
        if self._guardian is not None:
            self._guardian.watch(record)
        self._write_pids()

    def _wait(self, name: str) -> None:
        part = self._parts[name]
        check = part.check
        port = self._listen_port(name)
        if port is not None:
            check = readiness.served_by(part.process, port, check)
        wait_healthy(part.process, check, part.timeout, what=name)
        # Watched only from now on: dying during its own start is the starter's error.
        with self._lock:
            part.expected = True

    def _listen_port(self, name: str) -> int | None:
        """The port a part serves on, when the stack chose it (so it must be the part's)."""
        key = {"faults": "fault_api"}.get(name, name)
        if name == "api" and self.hosted is not None:
            return None  # the real app's server may front its port with a process of its own
        if key not in ("postgres", "redis", "fault_api", "cablecast", "api"):
            return None
        return self.settings.ports.get(key)

    def _app_names(self) -> list[str]:
        return [n for n in self._parts if n in APP_PARTS or n.startswith("worker-")]

    def _app_part(self, name: str) -> _Part:
        if name not in APP_PARTS and not name.startswith("worker-"):
            raise ValueError(f"{name!r} is not an app process; known: {', '.join(APP_PARTS)}")
        if name not in self._parts:
            raise ValueError(f"{name!r} is not part of this stack (workers = 0?)")
        return self._parts[name]

    def _check_alive(self) -> None:
        if self.stopped.is_set():
            raise StackError(self.failure or "the stack has been stopped")

    def _write_pids(self) -> None:
        with self._lock:
            if not self.stopped.is_set():
                self._record.write(self.pids_file)

    def _watch(self) -> None:
        while not self.stopped.wait(WATCH_INTERVAL):
            with self._lock:
                dead = [
                    (name, part)
                    for name, part in self._parts.items()
                    if part.expected and part.process.exit_code() is not None
                ]
                if not dead:
                    continue
                name, part = dead[0]
                self.failure = (
                    f"{name} (pid {part.process.pid}) died unexpectedly with exit code "
                    f"{part.process.exit_code()}; stopping the whole stack. "
                    f"Last lines of {part.process.log_path}:\n{part.process.log_tail()}"
                )
            with contextlib.suppress(OSError):  # a closed stderr must not skip the stop
                print(f"stack watchdog: {self.failure}", file=sys.stderr, flush=True)
            self.stop()
            return


def _this_process() -> Record:
    record = Record.of("orchestrator", os.getpid())
    assert record is not None
    return record


def start_stack(settings: StackSettings, attempts: int = 3) -> Stack:
    """Start a stack and return it healthy (the caller stops it).

    With free ports, another process may take one between our pick and the child's bind
    (a busy CI box runs several sessions); then the start is retried on fresh ports.
    """
    for attempt in range(1, attempts + 1):
        stack = Stack(settings)
        try:
            stack.up()
            return stack
        except StackError as exc:
            if not (settings.free_ports and attempt < attempts and _port_clash(exc)):
                raise
            with contextlib.suppress(OSError):
                print(f"stack: a port was taken during start ({attempt}/{attempts}); new ports")
            settings = settings.with_free_ports()
    raise AssertionError("unreachable")


def _port_clash(exc: StackError) -> bool:
    text = str(exc).lower()
    return "address already in use" in text or "is already in use" in text


@contextmanager
def running_stack(settings: StackSettings) -> Iterator[Stack]:
    """Start the stack, yield it healthy, always stop it (also on errors and Ctrl-C)."""
    stack = start_stack(settings)
    try:
        yield stack
    finally:
        stack.stop()


@atexit.register
def _stop_live_stacks() -> None:
    """Last resort when the interpreter exits without leaving a `with` block."""
    for stack in list(_live_stacks):
        stack.stop()

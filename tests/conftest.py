"""Session fixtures shared by every test package: the reference stack, started on demand,
and the real Archivist hosted in it (where ARCHIVIST_SRC names a checkout).

Nothing here starts (or even imports the stack's modules) unless a test asks for `stack`,
so sessions that never touch the testbed pay nothing for it.
"""

from __future__ import annotations

import os
import signal
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import pytest

if TYPE_CHECKING:
    from testbed.stack import Stack

REPO_ROOT = Path(__file__).resolve().parents[1]
Server = TypeVar("Server", bound=socketserver.BaseServer)
T = TypeVar("T")


def run_module(
    module: str, *args: str, timeout: float, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m MODULE ARGS` from the repo root, as a user or CI types it, so a test sees
    the real exit code and the exact stderr. `env` is the child's whole environment (None:
    this one); the timeout keeps a hung command from holding the session."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=None if env is None else dict(env),
    )


def run_python(code: str, timeout: float = 60) -> str:
    """`python -c CODE` from the repo root in a fresh interpreter (what it imports and
    registers is its own, not this session's); its stdout, stripped; fails on a non-zero
    exit with the stderr's tail."""
    answer = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip
    assert answer.returncode == 0, answer.stderr[-3000:]
    return answer.stdout.strip()


@contextmanager
def process_group(args: Sequence[str], **popen: Any) -> Iterator[subprocess.Popen[Any]]:
    """ARGS started in a session and process group of its own, for the block; if it still
    runs at the end (a failed assertion, a timeout), the whole group is SIGKILLed and reaped,
    so no test leaves a process or a port behind."""
    proc = subprocess.Popen(args, start_new_session=True, **popen)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@contextmanager
def serving(server: Server) -> Iterator[Server]:
    """A local test server answering on a daemon thread for the block, then shut down and
    its socket closed, so no test leaves a port open."""
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    """The whole reference stack on free ports, state in a tmp dir; stopped at session end."""
    from testbed.stack import StackSettings, running_stack, temporary_state_dir

    with temporary_state_dir() as state_dir:
        settings = StackSettings.from_config(free_ports=True, state_dir=state_dir)
        with running_stack(settings) as running:
            yield running


def without_archivist_src() -> dict[str, str]:
    """This environment minus ARCHIVIST_SRC: for a command that must not find a checkout."""
    return {k: v for k, v in os.environ.items() if k != "ARCHIVIST_SRC"}


def archivist_src() -> Path:
    """The checkout of the real Archivist named by ARCHIVIST_SRC, else the test is skipped."""
    src = os.environ.get("ARCHIVIST_SRC", "")
    if not src:
        pytest.skip("ARCHIVIST_SRC not set (a checkout of the real Archivist to host)")
    return Path(src)


@pytest.fixture(scope="module")
def archivist_stack() -> Iterator[Stack]:
    """The stack hosting the real Archivist of ARCHIVIST_SRC (web app + Celery worker).

    Its Redis proxy listens on 127.0.0.1:6379 (the app's rate limiter is hard-wired there),
    so only one such stack can run at a time: one per test module, stopped at its end (a
    module may also start its own). Its venv is built once and cached.
    """
    with hosting(archivist_src()) as running:
        yield running


@contextmanager
def hosting(src: Path) -> Iterator[Stack]:
    """A stack hosting the Flask Archivist of checkout SRC (the user's, or a seeded copy of
    it), stopped at the end of the block; one at a time (see archivist_stack)."""
    from testbed.stack import StackSettings, running_stack, temporary_state_dir

    with temporary_state_dir("testbed-archivist-") as state_dir:
        settings = StackSettings.from_config(
            free_ports=True, state_dir=state_dir, app="archivist-flask", app_src=src
        )
        with running_stack(settings) as running:
            yield running


def wait_until_healthy(
    api_url: str, timeout: float = 60.0, gone: Callable[[], str] = lambda: ""
) -> httpx.Response:
    """Until the API's health answers 200 (database, Redis and Cablecast all reached): after
    the previous test's outage the API's pool reconnects in its own time, and on a busy
    machine the next test's first login could meet that as a 503. `gone` names why the API
    can no longer come up (its process exited), "" while it still can."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if reason := gone():
            pytest.fail(reason)
        try:
            answer = httpx.get(f"{api_url}/api/health", timeout=5.0)
            if answer.status_code == 200:
                return answer
            last = f"{answer.status_code} {answer.text[:300]}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.2)
    pytest.fail(f"{api_url} did not become healthy in {timeout:.0f} s: {last}")
    raise AssertionError  # unreachable: pytest.fail raises


def retrying_503(
    call: Callable[[], T], deadline_s: float = 60.0, seen: list[str] | None = None
) -> T:
    """`call()` (a request, or a client method that raises on an error status), made again
    while it is answered 503, as a client does; bounded (a hang guard). On a loaded box a
    request may wait out the API's database pool (2 s), even its first one: for a test's
    set-up steps (log in, create the VODs it needs) that says nothing, so they are retried.
    Never for a step whose answer is what the test judges, unless the retry is part of
    that judgement; `seen` then collects the body of each 503 that was retried."""
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            result = call()
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code != 503 or time.monotonic() > deadline:
                raise
            text = exc.response.text
        else:
            if getattr(result, "status_code", None) != 503 or time.monotonic() > deadline:
                return result
            text = str(getattr(result, "text", ""))
        if seen is not None:
            seen.append(text)
        time.sleep(0.2)


@pytest.fixture
def clean_faults(stack: Stack) -> Iterator[Stack]:
    """After the test: no toxics, every proxy enabled, every app process up with its usual env.

    A test may kill or restart app processes (with a regression's env, say); the next test
    still gets the stack as the session started it.
    """
    if stack.stopped.is_set():
        pytest.fail(f"the session stack is down: {stack.failure}")
    wait_until_healthy(stack.api_url)
    yield stack
    if stack.stopped.is_set():
        pytest.fail(f"the session stack went down during the test: {stack.failure}")
    stack.reset_faults()
    for name in stack.app_parts_needing_reset():
        stack.restart(name)


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that host the real app share one xdist worker (`--dist loadgroup`): the app's
    limiter is hard-wired to 127.0.0.1:6379, so two of its stacks cannot run at once."""
    for item in items:
        if item.get_closest_marker("hosts_real_app") or "archivist_stack" in getattr(
            item, "fixturenames", ()
        ):
            item.add_marker(pytest.mark.xdist_group("real-app-redis-6379"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    """A failed test that used the stack reports the tail of each app's log with its
    traceback: the worker's side of a stuck job is otherwise gone with the session's
    temporary state directory."""
    report = yield
    funcargs = getattr(item, "funcargs", {})
    running = funcargs.get("stack") or funcargs.get("archivist_stack")
    if report.when == "call" and report.failed and running is not None:
        for name in ("api", "worker", "cablecast"):
            report.sections.append((f"{name}.log (tail)", running.log_tail(name, 60)))
    return report

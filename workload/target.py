"""Which Archivist the workloads hit when no ``--host`` is given: the local reference stack.

Without ``--host`` the target is the API of ``config/stack.toml``. If nothing answers
there, Locust stops at start with a message saying how to start the stack (``make up`` or
``python -m testbed up``) and exit code 2, instead of a wall of "connection refused"
failures; ``--start-stack`` starts it instead (and stops it when Locust quits).
"""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from locust import events
from locust.env import Environment
from locust.runners import WorkerRunner

from testbed.hosted.spec import REFERENCE, load_app
from testbed.processes import StackError

REPO_ROOT = Path(__file__).resolve().parents[1]
STACK_TOML = REPO_ROOT / "config" / "stack.toml"
HEALTH_PATH = "/api/health"
START_DEADLINE_S = 180.0
STOP_GRACE_S = 20.0

_started: subprocess.Popen[bytes] | None = None


def add_arguments(parser: Any) -> None:
    parser.add_argument(
        "--stack-config",
        default=str(STACK_TOML),
        include_in_web_ui=False,
        help="Stack TOML whose API and Cablecast ports are the default target "
        "(default config/stack.toml)",
    )
    parser.add_argument(
        "--start-stack",
        action="store_true",
        default=False,
        include_in_web_ui=False,
        help="Without --host: start the reference stack (python -m testbed up) if it is "
        "not running, and stop it when Locust quits",
    )


def stack_ports(path: Path = STACK_TOML) -> dict[str, Any]:
    try:
        data = tomllib.loads(Path(path).read_text())
        return {"host": data.get("host", "127.0.0.1"), "app": data.get("app"), **data["ports"]}
    except (OSError, tomllib.TOMLDecodeError, KeyError) as exc:
        raise SystemExit(f"error: {path}: cannot read the stack's [ports]: {exc}") from None


def default_api_url(path: Path = STACK_TOML) -> str:
    """The stack's API; HTTPS when the stack hosts a real app that serves it (config/apps)."""
    ports = stack_ports(path)
    scheme = "http"
    if ports["app"] not in (None, REFERENCE):
        try:
            scheme = "https" if load_app(REPO_ROOT, str(ports["app"])).tls else "http"
        except StackError as exc:
            raise SystemExit(f"error: {path}: {exc}") from None
    return f"{scheme}://{ports['host']}:{ports['api']}"


def stack_state_dir(path: Path = STACK_TOML) -> Path:
    """The stack's state dir (its `state_dir`, relative to the toolkit's root)."""
    try:
        value = str(tomllib.loads(Path(path).read_text()).get("state_dir", ".stack"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SystemExit(f"error: {path}: cannot read the stack's state_dir: {exc}") from None
    return Path(value) if Path(value).is_absolute() else REPO_ROOT / value


def default_cablecast_url(path: Path = STACK_TOML) -> str:
    ports = stack_ports(path)
    return f"http://{ports['host']}:{ports['cablecast']}/CablecastAPI/v1"


def stack_config_of(environment: Environment) -> Path:
    return Path(getattr(environment.parsed_options, "stack_config", "") or STACK_TOML)


def answers(url: str, timeout: float = 2.0) -> bool:
    """Whether an HTTP server answers at `url` (any status counts: it is running)."""
    # The stack's own HTTPS (a hosted app) has a self-signed certificate.
    context = ssl._create_unverified_context() if url.startswith("https://127.") else None
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context):
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False


def start_stack(api_url: str, config: Path) -> subprocess.Popen[bytes]:
    """`python -m testbed up` in its own process group; returns once the API answers."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "testbed", "up", "--config", str(config), "--exit-with-parent"],
        cwd=REPO_ROOT,
        start_new_session=True,
    )
    deadline = time.monotonic() + START_DEADLINE_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"error: `python -m testbed up` exited with code {proc.returncode}")
        if answers(api_url + HEALTH_PATH):
            return proc
        time.sleep(0.5)
    stop_stack(proc)
    raise SystemExit(f"error: the stack did not answer at {api_url} within {START_DEADLINE_S}s")


def stop_stack(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


@events.init.add_listener
def _default_host(environment: Environment, **_: Any) -> None:
    global _started
    if environment.host:
        return
    environment.host = default_api_url(stack_config_of(environment))
    if environment.parsed_options is not None:
        environment.parsed_options.host = environment.host
    if isinstance(environment.runner, WorkerRunner) or answers(environment.host + HEALTH_PATH):
        return
    if environment.parsed_options is not None and environment.parsed_options.start_stack:
        _started = start_stack(environment.host, stack_config_of(environment))
        return
    sys.stderr.write(
        f"error: no --host given and the reference Archivist stack is not running at "
        f"{environment.host} (config/stack.toml).\n"
        "Start it in another terminal with `make up` (or `python -m testbed up`), "
        "pass --start-stack to let Locust start it, or point --host at an Archivist.\n"
    )
    raise SystemExit(2)


@events.quitting.add_listener
def _stop_started_stack(**_: Any) -> None:
    if _started is not None:
        stop_stack(_started)

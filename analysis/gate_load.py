"""The gate's own load: start the stack, run ``[run]`` of config/gate.toml on it, stop it.

Which Archivist the stack hosts decides everything else about a gate run: the route
profile, the Locust flags the app needs (a real Archivist limits per client address, so
its users are spread over 127.0.0.2..), the stored baseline and the thresholds
(``[apps.NAME]`` of config/gate.toml). So ``make gate`` and ``make baseline`` start here,
reading the app from ``--app`` or config/stack.toml's ``app``, instead of a fixed Locust
command line that only fits the reference stack.

The stack gets free ports and a throwaway state folder, and is stopped whatever happens
(a failed start, a failed Locust, Ctrl-C, SIGTERM): a gate never leaves a port taken
(testbed.throwaway_stack, as for resilience experiments).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from analysis.config import RunSettings
from analysis.load import InputError
from analysis.processes import log_tail, stop_groups, terminate_as_interrupt
from testbed.app_choice import AppChoice, AppChoiceError, choose_app
from testbed.hosted.spec import locust_flags

REPO_ROOT = Path(__file__).resolve().parents[1]
STACK_CONFIG = REPO_ROOT / "config" / "stack.toml"
LOCUST_SLACK_S = 90.0  # Locust's own start and stop on top of the run and its stop timeout
HEARTBEAT_S = 15.0  # a line this often while the load runs: long work shows progress


class GateLoadError(InputError):
    """The gate's load could not run; the message says which part and why."""


def chosen_target(
    app: str | None, app_src: str | None, stack_config: Path = STACK_CONFIG
) -> AppChoice:
    """``--app``, else the stack TOML's ``app``; its checkout from ``--app-src``, then
    ``$ARCHIVIST_SRC``, then the stack TOML's ``app_src`` (testbed.app_choice: the rule
    ``experiments run`` uses too)."""
    try:
        return choose_app(app, app_src, stack_config)
    except AppChoiceError as exc:
        raise GateLoadError(str(exc)) from None


def app_for_routes(routes: str | None) -> str | None:
    """The hosted app whose own workload is ``routes`` (a run's profile), so a run recorded
    against a real app is gated with that app's checks; None for the reference's."""
    from testbed.hosted.spec import REFERENCE, known_apps, load_app
    from testbed.processes import StackError

    for name in known_apps(REPO_ROOT):
        if name == REFERENCE:
            continue
        try:
            if load_app(REPO_ROOT, name).routes == routes:
                return name
        except StackError:
            continue  # an unreadable app spec is reported when that app is started
    return None


def locust_command(
    run: RunSettings,
    run_dir: Path,
    api_url: str,
    cablecast_url: str,
    routes: str,
    options: dict[str, Any],
) -> list[str]:
    """The headless Locust run of ``[run]`` against one stack (pure)."""
    command = [
        sys.executable, "-m", "locust", "-f", run.locustfile, "--headless",
        "-u", str(run.users), "-r", f"{run.spawn_rate:g}", "-t", f"{run.duration_s:g}s",
        "--stop-timeout", f"{run.stop_timeout_s:g}", "--only-summary",
        "--exit-code-on-error", "0", "--host", api_url, "--cablecast-url", cablecast_url,
        "--routes", routes, "--run-dir", str(run_dir),
    ]  # fmt: skip
    return command + locust_flags(options) + run.distribution().flags()


def run_locust(
    command: list[str], run_dir: Path, run: RunSettings, say: Callable[[str], None]
) -> None:
    """Run Locust in its own session, its output in RUN/locust.log; a line every
    HEARTBEAT_S; a failed or hung Locust is an error with the log's last lines."""
    log = run_dir / "locust.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=os.environ | {"LOADKIT_SEED": str(run.seed)},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    if (spread := run.distribution()).expect_workers:
        say(
            f"waiting up to {spread.expect_workers_wait_s:g}s for {spread.expect_workers} workers "
            f"at {spread.master_bind_host}:{spread.master_bind_port} (on each host: locust -f "
            f"{run.locustfile} --worker --master-host HOST --master-port {spread.master_bind_port})"
        )
    started = time.monotonic()
    deadline = started + run.duration_s + run.stop_timeout_s + LOCUST_SLACK_S
    deadline += run.distribution().start_allowance_s()  # a master waiting for its workers
    try:
        while proc.poll() is None:
            if time.monotonic() > deadline:
                raise GateLoadError(f"Locust did not end in time:\n{log_tail(log)}")
            try:
                proc.wait(HEARTBEAT_S)
            except subprocess.TimeoutExpired:
                elapsed = min(time.monotonic() - started, run.duration_s)
                say(f"load: {elapsed:.0f}/{run.duration_s:g} s")
    finally:
        stop_groups([proc], run.stop_timeout_s + 10.0)
    if proc.returncode != 0:
        raise GateLoadError(f"Locust failed (exit {proc.returncode}); {log}:\n{log_tail(log)}")


def record_run(
    run: RunSettings,
    target: AppChoice,
    run_dir: Path,
    stack_config: Path = STACK_CONFIG,
    say: Callable[[str], None] = print,
    before_load: Callable[[Any], None] | None = None,
) -> str:
    """Start the stack hosting ``target``, run the gate's load into ``run_dir``, stop the
    stack; returns the route profile the load used. ``before_load(stack)`` runs once the
    stack is healthy (a bench sets a fault there, to see the gate catch it)."""
    from testbed.hosted.spec import REFERENCE, load_app
    from testbed.processes import StackError
    from testbed.throwaway_stack import StackStartError, reference_stack

    if run_dir.exists() and any(run_dir.iterdir()):
        raise GateLoadError(f"{run_dir}: not empty; the gate records a fresh run")
    hosted = target.app != REFERENCE
    try:
        routes = run.routes or (load_app(REPO_ROOT, target.app).routes if hosted else "contract")
    except StackError as exc:
        raise GateLoadError(str(exc)) from None
    what = f"{target.app} from {target.app_src}" if hosted else "reference"
    say(f"starting the stack ({what}) on free ports ...")
    try:
        with (
            terminate_as_interrupt(),
            reference_stack(target.app, target.app_src, stack_config) as stack,
        ):
            if before_load is not None:
                before_load(stack)
            run_dir.mkdir(parents=True, exist_ok=True)
            command = locust_command(
                run, run_dir, stack.api_url, stack.cablecast_url or "", routes, stack.load_options
            )
            say(
                f"gate load: {run.locustfile}, routes {routes}, {run.users} users for "
                f"{run.duration_s:g} s (seed {run.seed}) against {stack.api_url}"
            )
            run_locust(command, run_dir, run, say)
    except StackStartError as exc:
        raise GateLoadError(str(exc)) from None
    return routes

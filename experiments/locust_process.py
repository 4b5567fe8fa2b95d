"""Locust as the runner's child: its command line, its start, and its stop.

Locust runs in its own session (Ctrl-C reaches the runner, which stops it cleanly) and
gets SIGTERM when the runner dies; the load has started once analysis.capture wrote
`start` into the run folder's meta.json.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from experiments.errors import RunError
from experiments.experiment import REPO_ROOT, Experiment
from testbed.hosted.spec import locust_flags
from testbed.target import Target

START_TIMEOUT_S = 90.0  # Locust import and first spawn on a loaded 2-core box
TICK_S = 0.1


def locust_command(experiment: Experiment, target: Target, run_dir: Path) -> list[str]:
    load = experiment.load
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        load.locustfile,
        "--headless",
        "--host",
        target.api_url,
        "--users",
        str(load.users),
        "--spawn-rate",
        f"{load.spawn_rate:g}",
        "--run-time",
        f"{round(load.duration)}s",
        "--run-dir",
        str(run_dir),
        "--csv",
        str(run_dir / "locust"),
        "--exit-code-on-error",
        "0",
        "--only-summary",
        "--routes",
        load.routes,
        "--faults-url",  # bytes per link into meta.json (locustfiles/links.py)
        target.fault_url,
    ]
    if "stop-timeout" not in load.options:
        command += ["--stop-timeout", "5"]  # users stop promptly; the ledger is flushed
    if target.cablecast_url and "cablecast-url" not in load.options:
        # the workloads verify each publication there (workload/client.py)
        command += ["--cablecast-url", target.cablecast_url]
    if target.fixtures is not None and "fixtures" not in load.options:
        # the test data the stack seeded: what the workload publishes (workload/fixtures.py)
        command += ["--fixtures", str(target.fixtures)]
    if load.arrival_rate is not None:
        command += ["--arrival-rate", f"{load.arrival_rate:g}"]
    if load.shape is not None:
        command += ["--shape", load.shape]
    if load.tags:
        command += ["--tags", *load.tags]
    if load.exclude_tags:
        command += ["--exclude-tags", *load.exclude_tags]
    command += locust_flags(target.load_options | load.options)
    command += load.distribution.flags()
    command += list(load.user_classes)
    return command


def _die_with_parent() -> None:
    """In the Locust child: get SIGTERM when the runner dies, even by SIGKILL (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def start_locust(command: list[str], run_dir: Path, target: Target) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env["LOADKIT_RUN_DIR"] = str(run_dir)
    log = (run_dir / "locust.log").open("wb")
    try:
        return subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the runner, which stops Locust cleanly
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
    finally:
        log.close()


def stop_locust(process: subprocess.Popen[bytes], grace: float = 15.0) -> None:
    """SIGTERM (Locust writes its files and quits), then SIGKILL the group."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        if process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(wait)


def log_tail(run_dir: Path, lines: int = 15) -> str:
    path = run_dir / "locust.log"
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no locust.log)"
    return "\n".join(text[-lines:]) or "(empty)"


def wait_for_start(
    process: subprocess.Popen[bytes], run_dir: Path, allowance_s: float = 0.0
) -> float:
    """Epoch second the load started (meta.json `start`, written by analysis.capture);
    ``allowance_s`` more for a master that waits for workers from other hosts."""
    timeout = START_TIMEOUT_S + allowance_s
    deadline = time.monotonic() + timeout
    meta = run_dir / "meta.json"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RunError(
                f"Locust exited with code {process.returncode} before the load started; "
                f"last lines of {run_dir / 'locust.log'}:\n{log_tail(run_dir)}"
            )
        with contextlib.suppress(OSError, ValueError):
            start = json.loads(meta.read_text()).get("start")
            if start:
                return float(start)
        time.sleep(TICK_S)
    raise RunError(
        f"Locust did not start the load within {timeout:g}s (no start in {meta}; "
        "does the locustfile import analysis.capture?)"
    )

"""Running Locust as a subprocess, bounded in time, and reading what it left behind."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from faults.embedded import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class LocustRun:
    returncode: int
    stdout: str
    stderr: str
    run_dir: Path
    csv_prefix: Path

    def stats(self) -> list[dict[str, str]]:
        """Rows of `<prefix>_stats.csv` (one per type+name, plus Aggregated)."""
        with open(f"{self.csv_prefix}_stats.csv", newline="") as f:
            return list(csv.DictReader(f))

    def history(self) -> list[dict[str, str]]:
        with open(f"{self.csv_prefix}_stats_history.csv", newline="") as f:
            return list(csv.DictReader(f))

    def counts(self) -> dict[tuple[str, str], tuple[int, int]]:
        """(type, name) -> (requests, failures)."""
        return {
            (r["Type"], r["Name"]): (int(r["Request Count"]), int(r["Failure Count"]))
            for r in self.stats()
            if r["Name"] != "Aggregated"
        }

    def failures(self) -> str:
        path = Path(f"{self.csv_prefix}_failures.csv")
        return path.read_text() if path.exists() else ""


def run_locust(args: list[str], run_dir: Path, timeout: float = 90.0) -> LocustRun:
    """`python -m locust ARGS --run-dir RUN_DIR --csv RUN_DIR/stats` in its own process group.

    Killed (the whole group) if it outlives `timeout`, so no test leaves Locust behind.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    prefix = run_dir / "stats"
    cmd = [sys.executable, "-m", "locust", *args, "--run-dir", str(run_dir), "--csv", str(prefix)]
    proc = subprocess.Popen(
        cmd,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, "LOADKIT_SEED": "7"},
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"locust {' '.join(args)} ran over {timeout}s\n{err[-3000:]}")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return LocustRun(proc.returncode, out, err, run_dir, prefix)


def processes_args(count: int) -> list[str]:
    """`--processes count`, its master on a free port. On Locust's fixed default (5557) a
    second test session's workers would join this run's master, or its bind would fail."""
    port = str(free_port())
    return [
        "--processes", str(count),
        "--master-bind-host", "127.0.0.1", "--master-bind-port", port,
        "--master-host", "127.0.0.1", "--master-port", port,
    ]  # fmt: skip


# A plug-in a test adds to a run's -f (test_workloads.run_locust_until, the distributed
# runs): it ends the run exactly as --run-time does (the runner quits: users stopped, then
# the quitting handlers write the ledgers, captures and meta.json), once the test creates
# the file it names. Not SIGTERM: Locust's handler fires `quitting` first, while users
# still run, and a write they have acknowledged after it is in no ledger
# (workload/ledger.py flushes only at test stop and at quitting), which the audit of
# test_ledger_matches_the_database reads as a lost write.
STOP_PLUGIN = """
import os

import gevent
from locust import events
from locust.runners import WorkerRunner


@events.init.add_listener
def _stop_when_told(environment, **_):
    if isinstance(environment.runner, WorkerRunner):
        return  # the master (or the only runner) quits, and tells its workers
    path = os.environ["LOADKIT_TEST_STOP_FILE"]

    def watch():
        while not os.path.exists(path):
            gevent.sleep(0.2)
        environment.runner.quit()

    gevent.spawn(watch)
"""

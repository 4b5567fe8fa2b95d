"""`testbed up --exit-with-parent`: a tool that started the stack and died takes it along.

`locust --start-stack` starts the stack in its own session (so a Ctrl-C meant for Locust
does not cut the stack's orderly stop short); without this flag a killed Locust would leave
the stack holding the default ports for the next run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from testbed.guardian import StackRecord
from testbed.stack import temporary_state_dir
from testbed.stack_settings import REPO_ROOT
from tests.testbed.test_stack import CLI_START_BOUND_S, wait_for

PARENT = """
import subprocess, sys, time
argv = [sys.executable, "-m", "testbed", "up", "--free-ports", "--state-dir", sys.argv[1],
        "--exit-with-parent"]
subprocess.Popen(argv, start_new_session=True,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
time.sleep(600)
"""
GONE_BOUND_S = 30.0  # parent killed -> the stack noticed (0.2 s poll) and stopped in order


@pytest.fixture
def state_root() -> Iterator[Path]:
    with temporary_state_dir() as path:
        yield path


def test_stack_stops_when_the_process_that_started_it_is_killed(state_root: Path) -> None:
    state_dir = state_root / "state"
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(state_dir)], cwd=REPO_ROOT)
    stack_procs: list[psutil.Process] = []
    try:

        def ready() -> bool:
            record = StackRecord.read(state_dir / "pids.json")
            return record is not None and record.ready

        wait_for(ready, CLI_START_BOUND_S, "the stack started by the parent to be ready")
        (up,) = psutil.Process(parent.pid).children()
        stack_procs = [up, *up.children(recursive=True)]
        assert len(stack_procs) >= 7  # up, postgres, redis, faults, cablecast, api, worker

        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        killed_at = time.monotonic()
        _, alive = psutil.wait_procs(stack_procs, timeout=GONE_BOUND_S)
        took = time.monotonic() - killed_at
        print(f"\nparent SIGKILLed: its stack was gone {took:.1f} s later")
        assert [p for p in alive if p.status() != psutil.STATUS_ZOMBIE] == []
        assert not (state_dir / "pids.json").exists()  # an orderly stop, not the guardian's
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(10)
        for proc in stack_procs:
            if proc.is_running():
                proc.kill()

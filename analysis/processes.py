"""Child processes of the commands that start stacks and Locust (``gate --start-stack``,
``baseline record``, ``gate --against``): stopped whole, whatever happens, so a gate never
leaves a port taken; SIGTERM from a CI runner takes the same clean-up path as Ctrl-C."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType


def log_tail(path: Path, lines: int = 15) -> str:
    """The last lines of a child's log, for an error message that says why it failed."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def stop_groups(procs: list[subprocess.Popen[bytes]], grace: float) -> None:
    """SIGINT each process group (a stack stops all its parts on it) at once, then wait;
    SIGKILL a group that lingers past ``grace``."""
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGINT)
    deadline = time.monotonic() + grace
    for proc in procs:
        try:
            proc.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (a CI runner cancelling) raises KeyboardInterrupt, as Ctrl-C does."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)

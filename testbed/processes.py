"""Child processes of the stack: each in its own process group, logging to its own file.

One process group per child means a stop reaches everything the child spawned (runuser's
postgres, uvicorn's workers) with one `killpg`, and a SIGINT typed at the terminal does not
hit the children behind our back: the stack decides the order in which they stop.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil


class StackError(RuntimeError):
    """A part of the stack could not start, or died; the message says which and why."""


def log_tail(path: Path, lines: int = 20) -> str:
    """The last lines of a log file, for error messages (empty when there is none)."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16_384))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class ManagedProcess:
    """A long-running child started in a new session, with stdout/stderr in `log_path`."""

    name: str
    argv: Sequence[str]
    log_path: Path
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    stop_signal: int = signal.SIGTERM
    popen: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    def start(self) -> None:
        """Spawn the child; its log file is appended to, so restarts keep earlier output."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            banner = f"\n=== {time.strftime('%H:%M:%S')} starting: {' '.join(self.argv)}\n"
            log.write(banner.encode())
            log.flush()
            self.popen = subprocess.Popen(
                list(self.argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(self.env) if self.env is not None else None,
                cwd=self.cwd,
                start_new_session=True,
            )

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen is not None else None

    def exit_code(self) -> int | None:
        """None while running (or never started), else the exit status."""
        return self.popen.poll() if self.popen is not None else None

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def request_stop(self) -> None:
        """Send the stop signal to the group without waiting (to stop several at once)."""
        if self.popen is not None and self.popen.poll() is None:
            self._signal_group(self.stop_signal)

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the whole group to stop, then SIGKILL it if it has not within `timeout`."""
        if self.popen is None:
            return
        descendants = self._descendants()
        if self.popen.poll() is None:
            self._signal_group(self.stop_signal)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout)
        self._signal_group(signal.SIGKILL)
        self._reap()
        _kill_all(descendants)

    def kill(self) -> None:
        """SIGKILL the whole group at once: the crash a resilience test wants to see."""
        if self.popen is None:
            return
        descendants = self._descendants()
        self._signal_group(signal.SIGKILL)
        self._reap()
        _kill_all(descendants)

    def log_tail(self, lines: int = 20) -> str:
        return log_tail(self.log_path, lines)

    def _descendants(self) -> list[psutil.Process]:
        """Children that left our process group (postgres' backends call setsid)."""
        assert self.popen is not None
        try:
            return psutil.Process(self.popen.pid).children(recursive=True)
        except psutil.Error:
            return []

    def _signal_group(self, sig: int) -> None:
        assert self.popen is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, sig)

    def _reap(self) -> None:
        assert self.popen is not None
        try:
            self.popen.wait(5.0)
        except subprocess.TimeoutExpired as exc:  # pragma: no cover - SIGKILL cannot be ignored
            raise StackError(f"{self.name} (pid {self.popen.pid}) survived SIGKILL") from exc


def _kill_all(procs: list[psutil.Process]) -> None:
    """SIGKILL whatever of `procs` is still alive (psutil checks the pid was not reused)."""
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(procs, timeout=5)


def wait_healthy(
    proc: ManagedProcess,
    check: Callable[[], bool],
    timeout: float,
    what: str | None = None,
    interval: float = 0.05,
) -> float:
    """Poll `check` until it returns True; fail fast if the process exits, bounded by `timeout`.

    `check` may raise: that counts as "not yet" and the last error is quoted if time runs out.
    Returns the seconds waited.
    """
    what = what or proc.name
    start = time.monotonic()
    deadline = start + timeout
    last_error = ""
    while True:
        code = proc.exit_code()
        if code is not None:
            raise StackError(
                f"{what} exited with code {code} while starting; "
                f"last lines of {proc.log_path}:\n{proc.log_tail()}"
            )
        try:
            if check():
                return time.monotonic() - start
        except Exception as exc:  # any failure of a probe means "not healthy yet"
            last_error = f"{type(exc).__name__}: {exc}"
        if time.monotonic() >= deadline:
            raise StackError(
                f"{what} was not healthy within {timeout:.0f} s"
                + (f" (last probe error: {last_error})" if last_error else "")
                + f"; last lines of {proc.log_path}:\n{proc.log_tail()}"
            )
        time.sleep(interval)
        interval = min(interval * 1.5, 0.5)

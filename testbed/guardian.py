"""The stack's guardian: stops every child of a stack whose orchestrator died, even by SIGKILL.

The children run in sessions of their own (so a Ctrl-C does not reach them behind the
stack's back), which also means nothing kills them when the orchestrator dies without
stopping them. The guardian is a small process, also in a session of its own, reading its
stdin: a pipe whose write end only the orchestrator holds. The orchestrator sends one JSON
line per child it starts; EOF without a final "done" line means the orchestrator died, and
the guardian stops exactly the recorded processes (identified by pid and start time, so a
recycled pid is never hit), PostgreSQL with `pg_ctl stop -m immediate`. The write end is
close-on-exec, so no child inherits it (a bare fork() without exec would, and would delay
the guardian until that fork exits).

The same records go to STATE/pids.json, so `python -m testbed down` and the next `up` in
that state dir stop what is left should the guardian have been killed too.

PR_SET_PDEATHSIG would not do: Linux ties it to the thread that started the child, and the
stack restarts children from other threads (tests, the watchdog).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

import psutil

from testbed.processes import StackError

STOP_GRACE_S = 5.0  # SIGTERM, then SIGKILL whatever still runs
PG_CTL_TIMEOUT_S = 10


@dataclass(frozen=True)
class Record:
    """One child of a stack: enough to find exactly it again, and to stop it the right way."""

    name: str
    pid: int  # also its process group and session: each child starts a new session
    create_time: float  # psutil's, so a reused pid is told apart
    pg_data: str | None = None  # PostgreSQL's data dir: stopped with pg_ctl
    run_as: str | None = None  # the user PostgreSQL runs as (root runs it through runuser)

    @classmethod
    def of(cls, name: str, pid: int, **extra: str | None) -> Record | None:
        """The record of a running `pid`; None if it is already gone."""
        try:
            created = psutil.Process(pid).create_time()
        except psutil.Error:
            return None
        return cls(name, pid, created, **extra)

    def process(self) -> psutil.Process | None:
        """The recorded process if it still runs (and is the same one), else None."""
        try:
            proc = psutil.Process(self.pid)
            if proc.create_time() == self.create_time and proc.status() != psutil.STATUS_ZOMBIE:
                return proc
        except psutil.Error:
            pass
        return None


def stop_recorded(records: list[Record], log: IO[str] | None = None) -> list[str]:
    """Stop every recorded process that still runs, with all it spawned; returns their names.

    Bounded: SIGTERM (PostgreSQL: an immediate shutdown), then SIGKILL after STOP_GRACE_S.
    """
    live = [(rec, proc) for rec in records if (proc := rec.process()) is not None]
    everything: list[psutil.Process] = []
    for _, proc in live:
        # Collected before anything dies: an orphan is re-parented and no longer found.
        with contextlib.suppress(psutil.Error):
            everything += [proc, *proc.children(recursive=True)]
    for rec, _ in live:
        _say(log, f"stopping {rec.name} (pid {rec.pid})")
        if rec.pg_data:
            _pg_ctl_stop(rec, log)
        else:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(rec.pid, signal.SIGTERM)
    _, alive = psutil.wait_procs(everything, timeout=STOP_GRACE_S)
    for rec, proc in live:
        if proc.is_running():  # psutil: the same process (pid and start time), still there
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(rec.pid, signal.SIGKILL)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=STOP_GRACE_S)
    return [rec.name for rec, _ in live]


def _pg_ctl_stop(rec: Record, log: IO[str] | None) -> None:
    """Immediate shutdown: the postmaster stops its backends and removes its pid file."""
    from testbed.postgres import bin_dir

    argv = [str(bin_dir() / "pg_ctl"), "-D", str(rec.pg_data), "-m", "immediate"]
    argv += ["-w", "-t", str(PG_CTL_TIMEOUT_S), "stop"]
    if rec.run_as:
        argv = ["runuser", "-u", rec.run_as, "--", *argv]
    try:
        result = subprocess.run(
            argv, capture_output=True, text=True, timeout=PG_CTL_TIMEOUT_S + 5, check=False
        )
        _say(log, f"pg_ctl stop: exit {result.returncode} {result.stderr.strip()}")
    except (OSError, subprocess.TimeoutExpired) as exc:
        _say(log, f"pg_ctl stop failed ({exc}); the postmaster gets SIGKILL")


def _say(log: IO[str] | None, text: str) -> None:
    if log is not None:
        with contextlib.suppress(OSError, ValueError):
            print(f"{time.strftime('%H:%M:%S')} guardian: {text}", file=log, flush=True)


# -- the state file: a second line of defence, for when the guardian died too -------------


@dataclass
class StackRecord:
    """STATE/pids.json: who runs the stack (the owner) and every child it started."""

    owner: Record
    children: dict[str, Record] = field(default_factory=dict)
    guardian: Record | None = None
    ready: bool = False  # every part was healthy once

    def write(self, path: Path) -> None:
        data = {
            "owner": asdict(self.owner),
            "guardian": asdict(self.guardian) if self.guardian else None,
            "ready": self.ready,
            "children": {name: asdict(rec) for name, rec in self.children.items()},
        }
        # Write-then-rename: a reader (status, down, tests) never sees half a file.
        partial = path.with_suffix(".json.tmp")
        partial.write_text(json.dumps(data, indent=1) + "\n")
        partial.replace(path)

    @classmethod
    def read(cls, path: Path) -> StackRecord | None:
        """The record in `path`; None if there is none (or it is unreadable: nothing to do)."""
        try:
            data = json.loads(path.read_text())
            return cls(
                owner=Record(**data["owner"]),
                children={name: Record(**rec) for name, rec in data["children"].items()},
                guardian=Record(**data["guardian"]) if data.get("guardian") else None,
                ready=bool(data.get("ready")),
            )
        except (OSError, ValueError, TypeError, KeyError):
            return None


def refuse_if_running(state_dir: Path) -> None:
    """StackError if a stack runs from `state_dir` (its owner is alive), naming what to do."""
    record = StackRecord.read(state_dir / "pids.json")
    if record is not None and record.owner.process() is not None:
        raise StackError(
            f"a stack is already running from {state_dir} (pid {record.owner.pid}); "
            f"stop it first: python -m testbed down --state-dir {state_dir}"
        )


def stop_leftovers(state_dir: Path, log: IO[str] | None = None) -> list[str]:
    """Stop what a dead stack of `state_dir` left running; returns the names stopped.

    A stack whose owner still runs is not a leftover: that is an error naming what to do.
    """
    refuse_if_running(state_dir)
    path = state_dir / "pids.json"
    record = StackRecord.read(path)
    if record is None:
        return []
    stopped = stop_recorded(list(record.children.values()), log)
    path.unlink(missing_ok=True)
    return stopped


class Guardian:
    """The orchestrator's end: start the guardian, tell it each child, say "done" at a stop."""

    def __init__(self, log_path: Path) -> None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "testbed.guardian"],
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Not in our group: whatever kills the orchestrator's group must not kill it.
                start_new_session=True,
                cwd=Path(__file__).resolve().parents[1],
            )
        self._lock = threading.Lock()

    @property
    def pid(self) -> int:
        return self._proc.pid

    def record(self) -> Record | None:
        return Record.of("guardian", self._proc.pid)

    def watch(self, record: Record | None) -> None:
        """Add a child (or replace the one of that name, after a restart)."""
        if record is not None:
            self._send(json.dumps(asdict(record)))

    def close(self) -> None:
        """The stack stopped its children itself: the guardian leaves without stopping any."""
        self._send('"done"')
        with self._lock, contextlib.suppress(OSError):
            assert self._proc.stdin is not None
            self._proc.stdin.close()
        try:
            self._proc.wait(5)
        except subprocess.TimeoutExpired:  # pragma: no cover - it exits at EOF
            self._proc.kill()
            self._proc.wait(5)

    def _send(self, line: str) -> None:
        with self._lock, contextlib.suppress(OSError, ValueError):
            # A guardian that died must not break the stack: it is the second line of defence.
            assert self._proc.stdin is not None
            self._proc.stdin.write(line.encode() + b"\n")
            self._proc.stdin.flush()


def main() -> int:
    """Read records from stdin until EOF; at EOF without "done", stop the recorded children."""
    # Signals the orchestrator's terminal sends are not ours: only EOF ends the watch.
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    records: dict[str, Record] = {}
    done = False
    for line in sys.stdin:
        try:
            message = json.loads(line)
            if message == "done":
                done = True
            else:
                record = Record(**message)
                records[record.name] = record
        except (ValueError, TypeError):  # half a line: the orchestrator died mid-write
            _say(sys.stdout, f"ignoring a garbled line: {line!r}")
    if not done:
        _say(sys.stdout, "the stack's orchestrator died; stopping its children")
        stopped = stop_recorded(list(records.values()), sys.stdout)
        _say(sys.stdout, f"stopped: {', '.join(stopped) or 'nothing was left'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The ledger: what the service acknowledged, so an audit can hold it to its word.

Every ACKNOWLEDGED write (created, updated, deleted, published; for a profile audited by
tables, the answer's key fields) is appended, per process, to ``ledger-<pid>.jsonl`` in
the run folder, buffered and flushed at test stop and quit, so an audit can compare what
the service promised with the database. After quit every entry is written at once: on
SIGTERM Locust fires ``quitting`` before its users stop, and a delete acknowledged in that
gap, if dropped, would make the audit call the deleted VOD lost. The API client (workload.client)
records them. A worker of a distributed run hands its lines to workload.shipping instead,
and they land in the master's folder as ``ledger-<worker id>.jsonl``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from locust import events
from locust.env import Environment
from locust.runners import MasterRunner

from workload.capture import run_dir_of

LEDGER_FLUSH_ENTRIES = 1000
_compact_json = json.JSONEncoder(separators=(",", ":")).encode  # json.dumps makes one per call


class Ledger:
    """What the service acknowledged, one JSON line per write, per process.

    Buffered in memory (no I/O per request) and appended to ``ledger-<pid>.jsonl`` at test
    stop, at quit, and every ``LEDGER_FLUSH_ENTRIES`` entries.
    """

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []
        self.path: Path | None = None
        self.closing = False  # set at quit: from then on every entry is written at once
        self.flushed = 0  # entries written or handed to the sink so far: a worker reports it
        # Set by workload.shipping on a worker whose master keeps the ledger: the lines
        # go there instead of to the local file.
        self.sink: Callable[[list[str]], None] | None = None

    def record(self, kind: str, vod_id: int, **fields: Any) -> None:
        self.entries.append({"ts": time.time(), "kind": kind, "id": int(vod_id), **fields})
        if self.closing or len(self.entries) >= LEDGER_FLUSH_ENTRIES:
            self.flush()

    def record_ack(self, request: str, values: Mapping[str, Any]) -> None:
        """An acknowledged write of a profile audited by tables ([audit] checks = "tables"):
        the request and the answer's key fields its durable-write rules look up."""
        self.entries.append({"ts": time.time(), "kind": "ack", "request": request, **values})
        if self.closing or len(self.entries) >= LEDGER_FLUSH_ENTRIES:
            self.flush()

    def close(self) -> None:
        """Write what is buffered; later entries (users still stopping) go straight out."""
        self.closing = True
        self.flush()

    def record_refused(self, request: str, status: int, values: Mapping[str, Any]) -> None:
        """A write of a profile audited by tables that the service refused with a 5xx: the
        audit checks it left nothing half-written."""
        self.entries.append(
            {"ts": time.time(), "kind": "refused", "request": request, "status": status, **values}
        )
        if self.closing or len(self.entries) >= LEDGER_FLUSH_ENTRIES:
            self.flush()

    def flush(self) -> None:
        if not self.entries or (self.path is None and self.sink is None):
            return
        entries, self.entries = self.entries, []
        self.flushed += len(entries)
        lines = [_compact_json(e) + "\n" for e in entries]
        if self.sink is not None:
            self.sink(lines)
            return
        assert self.path is not None
        with self.path.open("a") as out:
            out.writelines(lines)


LEDGER = Ledger()


@events.init.add_listener
def _open_ledger(environment: Environment, **_: Any) -> None:
    if not isinstance(environment.runner, MasterRunner):
        LEDGER.path = run_dir_of(environment) / f"ledger-{os.getpid()}.jsonl"
        LEDGER.closing = False


@events.test_stop.add_listener
def _flush_at_stop(**_: Any) -> None:
    LEDGER.flush()


@events.quitting.add_listener
def _flush_at_quit(**_: Any) -> None:
    LEDGER.close()

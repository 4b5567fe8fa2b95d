"""What a master keeps of one worker's data: its request rows and its ledger, in files of
the master's run folder.

A worker on another host has its own disk, so the master's folder is the one place a
distributed run's results can be complete (workload.shipping sends them here). One file
of each kind per worker, named by Locust's client id (made filesystem-safe), keeps
workers apart without any coordination: ``requests-<id>.parquet`` in the capture format
and ``ledger-<id>.jsonl`` with the worker's lines exactly as it would have written them,
so the analysis and the audit read a master's folder as they read any other.

No Locust import: an inbox is plain files and counts, testable without a runner.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from workload.schema import SCHEMA

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def file_stem(client_id: str) -> str:
    """A worker's client id (``<hostname>_<uuid hex>``) as a file-name part: anything but
    letters, digits, dot, dash and underscore becomes an underscore."""
    return _UNSAFE.sub("_", client_id) or "worker"


def table_bytes(table: pa.Table) -> bytes:
    """`table` as an Arrow IPC stream: what a worker sends, column for column, no re-encoding
    of rows on either side."""
    out = pa.BufferOutputStream()
    with pa.ipc.new_stream(out, table.schema) as writer:
        writer.write_table(table)
    return bytes(out.getvalue().to_pybytes())


@dataclass
class Inbox:
    """One worker's rows and ledger lines as they arrive, and what it said it sent."""

    client_id: str
    run_dir: Path
    rows: int = 0
    ledger: int = 0
    sent: tuple[int, int] | None = None  # (rows, ledger lines) of its last final report
    final: bool = False  # this test's final report arrived
    _writer: pq.ParquetWriter | None = field(default=None, repr=False)

    @property
    def requests_path(self) -> Path:
        return self.run_dir / f"requests-{file_stem(self.client_id)}.parquet"

    @property
    def ledger_path(self) -> Path:
        return self.run_dir / f"ledger-{file_stem(self.client_id)}.jsonl"

    def add_rows(self, data: bytes) -> int:
        """Append one shipped batch (an Arrow IPC stream) as a row group; its row count."""
        table = pa.ipc.open_stream(data).read_all().cast(SCHEMA)
        if self._writer is None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(self.requests_path, SCHEMA, compression="zstd")
        self._writer.write_table(table)
        self.rows += table.num_rows
        return int(table.num_rows)

    def add_ledger(self, lines: list[str]) -> None:
        """Append ledger lines (each ends in a newline) as the worker wrote them."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with self.ledger_path.open("a", encoding="utf-8") as out:
            out.writelines(lines)
        self.ledger += len(lines)

    def report(self, rows: int, ledger: int) -> None:
        """The worker's final report: everything it recorded, sent before this message."""
        self.sent = (rows, ledger)
        self.final = True

    @property
    def ended(self) -> str:
        """``normally``: its final report came and everything it counted arrived (Locust's
        channel keeps a worker's messages in order, so its batches precede the report);
        ``lost``: killed, cut off or silent before that."""
        whole = self.sent is not None and self.rows >= self.sent[0] and self.ledger >= self.sent[1]
        return "normally" if self.final and whole else "lost"

    def to_json(self) -> dict[str, Any]:
        return {
            "rows_received": self.rows,
            "ledger_received": self.ledger,
            "rows_sent": None if self.sent is None else self.sent[0],
            "ledger_sent": None if self.sent is None else self.sent[1],
            "ended": self.ended,
        }

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def worker_lines(workers: dict[str, dict[str, Any]]) -> list[str]:
    """One line per worker of a run's meta.json ``workers``: what arrived, how it ended (the
    master's log at test stop, and ``python -m analysis summary``)."""
    lines = []
    for client_id, w in sorted(workers.items()):
        got = f"{w['rows_received']} requests, {w['ledger_received']} ledger entries"
        if w["ended"] == "normally":
            lines.append(f"worker {client_id}: {got} received, ended normally")
        else:
            lines.append(
                f"worker {client_id} was LOST before its final report: kept only what it "
                f"sent until then ({got}); whatever it recorded later is missing"
            )
    return lines

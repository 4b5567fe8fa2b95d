"""The JSON-lines files a run folder collects per process (ledger, observations).

Read by the audit, the answers' truth and the findings alike, so one reader decides what a
line is worth: a torn last line (a process killed mid-write) and anything but an object
are skipped. No Locust import: the analysis side reads these too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

LEDGER_GLOB = "ledger-*.jsonl"


def json_lines(run_dir: Path, pattern: str) -> list[dict[str, Any]]:
    """The objects of every file of `run_dir` matching `pattern`, file by file."""
    found = []
    for path in sorted(run_dir.glob(pattern)):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a torn last line
            if isinstance(entry, dict):
                found.append(entry)
    return found


def ledger_entries(run_dir: Path, kinds: tuple[str, ...] = ("ack",)) -> list[dict[str, Any]]:
    """The ledger's entries of `kinds` (`ack`: an acknowledged write of a profile audited
    by tables; `refused`: one the service answered with a 5xx), oldest first."""
    entries = [e for e in json_lines(run_dir, LEDGER_GLOB) if e.get("kind") in kinds]
    entries.sort(key=lambda e: float(e.get("ts", 0)))
    return entries

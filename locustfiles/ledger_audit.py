"""Did the database keep what the service acknowledged? The ledger checked against PostgreSQL.

The workloads append every acknowledged write to ``ledger-<pid>.jsonl`` in the run folder
(see locustfiles/archivist.py). Each person edits and deletes only their own VODs, so the
LAST event per id is what the service last promised about that VOD:

- created   -> the row exists, version >= told, title as told; status as told unless the
               VOD was handed to the worker since (it then moves on by itself);
- updated   -> the row exists, version >= told, every field the client set as told;
- published -> the row exists, status published, the Cablecast ids as told;
- deleted   -> the row is gone.

``python -m locustfiles.ledger_audit RUN_DIR --database-url URL`` prints the findings and
exits 1 if any write was lost (0 if none, 2 on unusable input).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

COLUMNS = ("id", "title", "status", "version", "cablecast_show_id", "cablecast_vod_id", "job_id")


def load_ledger(run_dir: Path) -> list[dict[str, Any]]:
    """Every ledger entry of every process of a run, in acknowledgement order."""
    files = sorted(Path(run_dir).glob("ledger-*.jsonl"))
    entries: list[dict[str, Any]] = []
    for path in files:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            try:
                entries.append(json.loads(line))
            except ValueError:
                raise ValueError(f"{path}:{number}: not a JSON line: {line[:80]!r}") from None
    return sorted(entries, key=lambda e: e["ts"])


def last_events(entries: Iterable[Mapping[str, Any]]) -> dict[int, Mapping[str, Any]]:
    last: dict[int, Mapping[str, Any]] = {}
    for entry in entries:
        last[int(entry["id"])] = entry
    return last


def audit(entries: Iterable[Mapping[str, Any]], rows: Mapping[int, Mapping[str, Any]]) -> list[str]:
    """What the database contradicts, one sentence per VOD ([] if every promise was kept)."""
    problems: list[str] = []
    for vod_id, event in sorted(last_events(entries).items()):
        row, kind = rows.get(vod_id), event["kind"]
        if kind == "deleted":
            if row is not None:
                problems.append(f"VOD {vod_id}: deleted (acknowledged) but still in the database")
            continue
        if row is None:
            problems.append(f"VOD {vod_id}: {kind} (acknowledged) but missing from the database")
            continue
        problems += [f"VOD {vod_id}: {p}" for p in _compare(kind, event, row)]
    return problems


def _compare(kind: str, event: Mapping[str, Any], row: Mapping[str, Any]) -> list[str]:
    found: list[str] = []
    told = event.get("version")
    if isinstance(told, int) and row["version"] < told:
        found.append(f"version {row['version']} < {told} told at {kind}")
    expected: dict[str, Any] = {}
    if kind == "created":
        expected["title"] = event.get("title")
        if row.get("job_id") is None:
            expected["status"] = event.get("status")
    elif kind == "updated":
        expected.update(event.get("fields") or {})
    elif kind == "published":
        expected["status"] = "published"
        expected["cablecast_show_id"] = event.get("cablecast_show_id")
        expected["cablecast_vod_id"] = event.get("cablecast_vod_id")
    for name, value in expected.items():
        if name in row and row[name] != value:
            found.append(f"{name} is {row[name]!r}, {kind} told {value!r}")
    return found


def fetch_rows(database_url: str, ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    import psycopg
    from psycopg.rows import dict_row

    wanted = sorted(set(ids))
    with psycopg.connect(database_url, connect_timeout=5, row_factory=dict_row) as conn:
        cur = conn.execute(
            f"SELECT {', '.join(COLUMNS)} FROM vods WHERE id = ANY(%s)",
            (wanted,),
        )
        return {int(r["id"]): r for r in cur.fetchall()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m locustfiles.ledger_audit", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("run_dir", type=Path, help="run folder with ledger-<pid>.jsonl files")
    parser.add_argument("--database-url", required=True, help="PostgreSQL of the stack (direct)")
    args = parser.parse_args(argv)
    if not args.run_dir.is_dir():
        parser.exit(2, f"error: {args.run_dir}: no such run folder\n")
    try:
        entries = load_ledger(args.run_dir)
    except (ValueError, KeyError) as exc:
        parser.exit(2, f"error: {exc}\n")
    if not entries:
        parser.exit(2, f"error: {args.run_dir}: no ledger entries (ledger-*.jsonl)\n")
    try:
        rows = fetch_rows(args.database_url, (int(e["id"]) for e in entries))
    except Exception as exc:  # psycopg's errors: any failure to read is unusable input
        parser.exit(2, f"error: cannot read the database: {exc}\n")
    problems = audit(entries, rows)
    print(f"{len(last_events(entries))} VODs in the ledger, {len(problems)} broken promises")
    for problem in problems:
        print("  " + problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

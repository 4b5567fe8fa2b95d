"""What the stores held, for the answers checked against the data (analysis.wrong_answers).

The route profile's ``[[answers]]`` (workload.answer_rules) names the stores: a PostgreSQL
table or the Cablecast simulator's shows and VODs. Before the load starts the runner
takes what a list check needs (how many records there were, and their ids); after the
load the same again, and for an item check the rows of the ids the workload read. Both go
to ``answers-truth.json`` in the run folder, so the findings are judged from the folder
alone, after the stack is gone. Bounded: at most ``MAX_IDS`` ids per store (beyond that
``complete`` is false and "an id the store never held" is not judged).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from experiments.audit_result import AuditError, Sources, safe_url
from workload.answer_rules import TRUTH_FILE, AnswerCheck, read_observations

MAX_IDS = 100_000
PAGE = 500


def _table_ids(conn: psycopg.Connection[Any], check: AnswerCheck) -> dict[str, Any]:
    query = sql.SQL("SELECT {key}::text FROM {table} LIMIT %s").format(
        key=sql.Identifier(check.key), table=sql.Identifier(check.table)
    )
    ids = [r[0] for r in conn.execute(query, (MAX_IDS + 1,)).fetchall()]
    return {"count": len(ids), "ids": ids[:MAX_IDS], "complete": len(ids) <= MAX_IDS}


def _cablecast_ids(http: httpx.Client, collection: str) -> dict[str, Any]:
    ids: list[str] = []
    while len(ids) <= MAX_IDS:
        response = http.get(f"/{collection}", params={"page_size": PAGE, "offset": len(ids)})
        response.raise_for_status()
        batch = response.json()[collection]
        ids += [str(item["id"]) for item in batch]
        if len(batch) < PAGE:
            break
    return {"count": len(ids), "ids": ids[:MAX_IDS], "complete": len(ids) <= MAX_IDS}


def _rows(
    conn: psycopg.Connection[Any], check: AnswerCheck, ids: list[str]
) -> dict[str, dict[str, Any]]:
    columns = [check.key, *([check.version] if check.version else []), *check.fields]
    query = sql.SQL("SELECT {cols} FROM {table} WHERE {key}::text = ANY(%s)").format(
        cols=sql.SQL(", ").join(sql.Identifier(c) for c in dict.fromkeys(columns)),
        table=sql.Identifier(check.table),
        key=sql.Identifier(check.key),
    )
    with conn.cursor(row_factory=dict_row) as cur:
        found = cur.execute(query, (ids,)).fetchall()
    return {str(r[check.key]): {k: _plain(v) for k, v in r.items()} for r in found}


def _plain(value: Any) -> Any:
    """A column value as JSON keeps it (and as an answer shows it: numbers stay numbers)."""
    return value if value is None or isinstance(value, bool | int | float | str) else str(value)


def snapshot(
    checks: tuple[AnswerCheck, ...], sources: Sources, read: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Per check's route: the ids (list checks) and, given the answers `read`, the rows
    (item checks) the stores hold now; AuditError names a store it cannot read."""
    truth: dict[str, Any] = {}
    tables = [c for c in checks if c.store == "table"]
    shown = [c for c in checks if c.store == "cablecast"]
    if tables:
        if not sources.database_url:
            raise AuditError("the answers need the database: set DATABASE_URL")
        try:
            with psycopg.connect(sources.database_url, connect_timeout=5) as conn:
                for check in tables:
                    if check.kind == "list":
                        truth[check.route] = _table_ids(conn, check)
                    elif read is not None:
                        wanted = {str(o["path_id"]) for o in read if o["route"] == check.route}
                        truth[check.route] = {"rows": _rows(conn, check, sorted(wanted))}
        except psycopg.errors.UndefinedTable as exc:
            # Another app's database (a profile run against the wrong target): say so plainly.
            name = exc.diag.message_primary or str(exc).splitlines()[0]
            raise AuditError(
                f"database {safe_url(sources.database_url)} lacks a table the profile reads "
                f"({name.replace('relation', 'table')}): is it the app's database?"
            ) from None
        except psycopg.Error as exc:
            raise AuditError(f"database {safe_url(sources.database_url)}: {exc}") from None
    if shown and sources.cablecast_url:
        base = sources.cablecast_url.rstrip("/")
        try:
            with httpx.Client(base_url=base, timeout=10.0, trust_env=False) as http:
                for check in shown:
                    truth[check.route] = _cablecast_ids(http, check.collection)
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            raise AuditError(f"Cablecast {base}: {exc}") from None
    return truth


def write_truth(run_dir: Path, phase: str, truth: dict[str, Any]) -> None:
    """Add `phase` ("before" or "after") to the run's answers-truth.json."""
    path = run_dir / TRUTH_FILE
    held = json.loads(path.read_text()) if path.exists() else {}
    held[phase] = truth
    path.write_text(json.dumps(held) + "\n")


def take(
    run_dir: Path, phase: str, checks: tuple[AnswerCheck, ...], sources: Sources
) -> dict[str, Any]:
    """Snapshot the stores for `phase` and keep it in the run folder (the rows of the
    records read only after the load, when the run's observations are in)."""
    read = read_observations(run_dir) if phase == "after" else None
    truth = snapshot(checks, sources, read)
    write_truth(run_dir, phase, truth)
    return truth

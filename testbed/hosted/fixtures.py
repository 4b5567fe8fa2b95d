"""The test data a hosted app's workflows start from, seeded through its own tables.

A real app's workflows need data the workload cannot make through its routes: the Flask
Archivist publishes a *transcription result* whose SCC file is on its NAS, and no route
of the hosted app makes one (transcribing needs the ML stack it runs without). So the
stack seeds, after the app's schema exists, what `[[fixtures]]` of config/apps/NAME.toml
declares: rows of the app's own tables, and the files their path columns name, written
where the app's private /mnt really is (a folder of the state dir).

Each row's key is derived from the app, the fixture and its number (uuid5), so a restart
of the same state dir inserts nothing twice; the ids go to `<state_dir>/fixtures.json`,
which the workload reads (workload/fixtures.py) to publish what really exists.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import psycopg
from psycopg import sql

from testbed.processes import StackError

FIXTURES_FILE = "fixtures.json"
_NAMESPACE = uuid.UUID("6f1e3c52-9b0e-4f7a-8a44-2b1c5f0e7d13")  # the toolkit's, fixed
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
PLACEHOLDERS = {"n", "id", "now", "size"}


@dataclass(frozen=True)
class Fixture:
    """One `[[fixtures]]` entry: `count` rows of `table`, keyed by `key` (a uuid per row).

    `row` maps columns to values; strings may hold {n} (1..count), {id} (the row's key),
    {now} (UTC, ISO) and {size} (bytes of the row's first file). `files` maps a path
    column to the file of our tree whose copy must exist at that path, as the app sees it.
    """

    name: str
    table: str
    key: str
    count: int
    row: dict[str, Any]
    files: dict[str, str]


def parse_fixtures(path: Path, items: Any) -> tuple[Fixture, ...]:
    """`[[fixtures]]` of a hosting spec, checked: a clear error names the entry and field."""
    if items is None:
        return ()
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise StackError(f"{path}: fixtures must be an array of tables ([[fixtures]])")
    found: list[Fixture] = []
    for n, item in enumerate(items):
        where = f"{path}: fixtures[{n}]"
        name, table, key = item.get("name"), item.get("table"), item.get("key", "id")
        count, row, files = item.get("count"), item.get("row", {}), item.get("files", {})
        for field_name, value in (("name", name), ("table", table), ("key", key)):
            if not isinstance(value, str) or not value:
                raise StackError(f"{where}.{field_name} must be a non-empty string")
        if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= 10_000:
            raise StackError(f"{where}.count must be a whole number 0..10000, not {count!r}")
        if not isinstance(row, dict) or not row:
            raise StackError(f"{where}.row must be a table of column = value")
        if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
            raise StackError(f"{where}.files must map path columns to files of the toolkit")
        for column in files:
            if not isinstance(row.get(column), str):
                raise StackError(f"{where}.files.{column}: row.{column} must be a path string")
        unknown = {
            m
            for value in row.values()
            if isinstance(value, str)
            for m in _PLACEHOLDER.findall(value)
        } - PLACEHOLDERS
        if unknown:
            raise StackError(
                f"{where}.row: unknown placeholder(s) {', '.join(sorted(unknown))}; "
                f"known: {', '.join(sorted(PLACEHOLDERS))}"
            )
        found.append(Fixture(name, table, key, count, dict(row), dict(files)))
    return tuple(found)


def fixture_key(app: str, fixture: Fixture, n: int) -> str:
    """The key of row `n`: the same on every start, different per app and fixture."""
    return str(uuid.uuid5(_NAMESPACE, f"{app}/{fixture.name}/{n}"))


def render_row(
    fixture: Fixture, key: str, n: int, now: dt.datetime, size: int | None
) -> dict[str, Any]:
    """Row `n` of `fixture` with its placeholders filled in (pure)."""
    values = {
        "n": str(n),
        "id": key,
        "now": now.isoformat(),
        "size": "" if size is None else str(size),
    }
    row: dict[str, Any] = {fixture.key: key}
    for column, value in fixture.row.items():
        if isinstance(value, str):
            text = _PLACEHOLDER.sub(lambda m: values[m.group(1)], value)
            row[column] = int(text) if value == "{size}" and text else text
        else:
            row[column] = json.dumps(value) if isinstance(value, dict | list) else value
    return row


def host_path(app_path: str, mounts: dict[str, Path]) -> Path:
    """Where a path the app sees (in its private mount namespace) is on this host."""
    path = PurePosixPath(app_path)
    for target, folder in sorted(mounts.items(), key=lambda kv: -len(kv[0])):
        if path == PurePosixPath(target) or PurePosixPath(target) in path.parents:
            return folder / path.relative_to(target)
    raise StackError(
        f"fixture path {app_path} is under none of the app's mounts "
        f"({', '.join(sorted(mounts)) or 'none'}): the stack cannot write it"
    )


def seed(
    app: str,
    fixtures: tuple[Fixture, ...],
    database_url: str,
    mounts: dict[str, Path],
    root: Path,
) -> dict[str, list[str]]:
    """Write each fixture's files and insert its rows (those already there are kept);
    returns the keys per fixture name."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)  # the app stores naive UTC
    keys: dict[str, list[str]] = {}
    try:
        with psycopg.connect(database_url, connect_timeout=10) as conn:
            for fixture in fixtures:
                keys[fixture.name] = []
                for n in range(1, fixture.count + 1):
                    key = fixture_key(app, fixture, n)
                    paths = render_row(fixture, key, n, now, None)
                    sizes = [
                        _copy(root / source, host_path(paths[column], mounts))
                        for column, source in fixture.files.items()
                    ]
                    row = render_row(fixture, key, n, now, sizes[0] if sizes else None)
                    _insert(conn, fixture.table, row)
                    keys[fixture.name].append(key)
    except psycopg.Error as exc:
        raise StackError(f"seeding the hosted app's fixtures failed: {exc}") from None
    return keys


def _copy(source: Path, target: Path) -> int:
    if not source.is_file():
        raise StackError(f"fixture file {source} is missing")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target.stat().st_size


def _insert(conn: psycopg.Connection[Any], table: str, row: dict[str, Any]) -> None:
    query = sql.SQL("INSERT INTO {table} ({columns}) VALUES ({values}) ON CONFLICT DO NOTHING")
    conn.execute(
        query.format(
            table=sql.Identifier(table),
            columns=sql.SQL(", ").join(sql.Identifier(c) for c in row),
            values=sql.SQL(", ").join(sql.Placeholder() for _ in row),
        ),
        tuple(row.values()),
    )


def write_fixtures(state_dir: Path, app: str, keys: dict[str, list[str]]) -> Path:
    """`<state_dir>/fixtures.json`: what the workload may rely on existing."""
    path = state_dir / FIXTURES_FILE
    path.write_text(json.dumps({"app": app, "fixtures": keys}, indent=2) + "\n")
    return path


def prepare_fixtures(
    app: str,
    fixtures: tuple[Fixture, ...],
    database_url: str,
    mounts: dict[str, Path],
    root: Path,
    state_dir: Path,
) -> Path | None:
    """Seed `fixtures` and record their keys; None (and no stale file) when there are none."""
    path = state_dir / FIXTURES_FILE
    if not fixtures:
        path.unlink(missing_ok=True)
        return None
    return write_fixtures(state_dir, app, seed(app, fixtures, database_url, mounts, root))

"""Fixtures of a hosted app (testbed/hosted/fixtures.py) and their ids for the workload.

Seeding runs on the reference stack's PostgreSQL, in a schema of its own holding the two
tables of the Flask Archivist's models the fixtures fill (core/models.py), so no checkout
is needed; the real app's own run is tests/resilience/test_publish_real.py.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest

from testbed.hosted.fixtures import (
    FIXTURES_FILE,
    host_path,
    parse_fixtures,
    prepare_fixtures,
)
from testbed.hosted.spec import load_app
from testbed.processes import StackError
from testbed.stack import Stack
from workload.fixtures import FixturesError, read_fixtures

ROOT = Path(__file__).resolve().parents[2]
APP = load_app(ROOT, "archivist-flask")
# The columns of the app's models (core/models.py) that the fixtures fill.
TABLES = """
CREATE TABLE transcription_results (
    id varchar(36) PRIMARY KEY, video_path varchar(255) NOT NULL,
    output_path varchar(255) NOT NULL, status varchar(20) NOT NULL,
    completed_at timestamp NOT NULL, error text);
CREATE TABLE digital_files (
    id varchar(36) PRIMARY KEY, filename varchar(255) NOT NULL, path varchar(500) NOT NULL,
    size bigint NOT NULL, mime_type varchar(100) NOT NULL, file_metadata json,
    created_at timestamp NOT NULL, city varchar(100) NOT NULL,
    document_type varchar(100) NOT NULL, flex_server varchar(50) NOT NULL,
    source_url varchar(500));
"""


@pytest.fixture
def app_database(stack: Stack) -> Iterator[str]:
    """A URL of the stack's database whose search_path is a fresh schema with the tables."""
    schema = f"fixtures_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"SET search_path = {schema}")
        conn.execute(TABLES)
    sep = "&" if "?" in stack.database_url else "?"
    try:
        yield f"{stack.database_url}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        with psycopg.connect(stack.database_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def _seed(database_url: str, state: Path) -> Path | None:
    mounts = {target: state / APP.name / folder for target, folder in APP.mounts.items()}
    return prepare_fixtures(APP.name, APP.fixtures, database_url, mounts, ROOT, state)


def test_seeding_inserts_the_rows_and_files_once_across_restarts(
    app_database: str, tmp_path: Path
) -> None:
    first = _seed(app_database, tmp_path)
    again = _seed(app_database, tmp_path)  # a restart of the same state dir
    assert first == again == tmp_path / FIXTURES_FILE
    ids = read_fixtures(first)
    wanted = {f.name: f.count for f in APP.fixtures}
    assert {name: len(keys) for name, keys in ids.items()} == wanted
    with psycopg.connect(app_database) as conn:
        rows = conn.execute(
            "SELECT id, output_path, status FROM transcription_results ORDER BY id"
        ).fetchall()
        files = conn.execute("SELECT id, path, size, file_metadata FROM digital_files").fetchall()
    assert sorted(r[0] for r in rows) == sorted(ids["transcriptions"])
    nas = tmp_path / APP.name
    for _, output_path, status in rows:
        assert status == "completed"
        scc = nas / output_path.removeprefix("/")
        assert scc.read_text().startswith("Scenarist_SCC V1.0"), scc
    assert sorted(f[0] for f in files) == sorted(ids["digital_files"])
    for _, path, size, metadata in files:
        assert (nas / path.removeprefix("/")).stat().st_size == size
        assert metadata["city"] == "Oakdale"


def test_a_stack_without_fixtures_leaves_no_stale_ids(app_database: str, tmp_path: Path) -> None:
    (tmp_path / FIXTURES_FILE).write_text('{"fixtures": {"transcriptions": ["gone"]}}')
    mounts = {"/mnt": tmp_path / "mnt"}
    assert prepare_fixtures(APP.name, (), app_database, mounts, ROOT, tmp_path) is None
    assert not (tmp_path / FIXTURES_FILE).exists()


def test_a_path_outside_the_apps_mounts_is_named() -> None:
    assert host_path("/mnt/nas/x.scc", {"/mnt": Path("/s/mnt")}) == Path("/s/mnt/nas/x.scc")
    with pytest.raises(StackError, match=r"/srv/x\.scc is under none of the app.s mounts"):
        host_path("/srv/x.scc", {"/mnt": Path("/s/mnt")})


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"table": "t", "count": 1, "row": {"a": "1"}}, r"fixtures\[0\]\.name must be"),
        ({"name": "x", "table": "t", "count": -1, "row": {"a": "1"}}, "count must be"),
        ({"name": "x", "table": "t", "count": 1, "row": {"a": "{nope}"}}, "unknown placeholder"),
        (
            {"name": "x", "table": "t", "count": 1, "row": {"a": "1"}, "files": {"p": "f"}},
            "row.p must be a path string",
        ),
    ],
)
def test_a_bad_fixture_entry_is_a_one_line_error(entry: dict, message: str) -> None:
    with pytest.raises(StackError, match=message) as caught:
        parse_fixtures(Path("app.toml"), [entry])
    assert "\n" not in str(caught.value)


def test_a_bad_fixtures_file_names_itself(tmp_path: Path) -> None:
    path = tmp_path / "fixtures.json"
    with pytest.raises(FixturesError, match="cannot read it"):
        read_fixtures(path)
    path.write_text(json.dumps({"fixtures": {"transcriptions": [1, 2]}}))
    with pytest.raises(FixturesError, match="as the stack writes it"):
        read_fixtures(path)

"""The leak finding on the real Archivist (ARCHIVIST_SRC; skipped without it): the short
soak (config/experiments/archivist-soak-short.toml) on a copy of the checkout whose
`GET /api/{id}` keeps one more PostgreSQL connection every other call must report a
`leak` of PostgreSQL connections; the checkout itself is never edited (STYLE.md 8)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import archivist_src

REPO = Path(__file__).resolve().parents[2]
ROUTE_FILE = Path("core/api/routes/digitalfiles.py")
FETCH = "            digital_file = DigitalFileORM.query.get_or_404(file_id)\n"
LEAK = (
    "            _SEEDED_LEAK.append(file_id)  # seeded: every other call keeps a connection\n"
    "            if len(_SEEDED_LEAK) % 2 == 0:\n"
    "                import psycopg2\n"
    "                _SEEDED_LEAK.append(psycopg2.connect(os.environ['DATABASE_URL']))\n"
)
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900), pytest.mark.hosts_real_app]


def seeded_copy(src: Path, into: Path) -> Path:
    """A copy of the checkout with the connection leak in its digital-file route."""
    copy = into / "archivist"
    shutil.copytree(src, copy, ignore=shutil.ignore_patterns(".git", "logs"))
    route = copy / ROUTE_FILE
    code = route.read_text()
    assert code.count(FETCH) >= 1, f"{ROUTE_FILE} changed: the seed needs updating"
    code = code.replace(FETCH, LEAK + FETCH, 1)  # the first: get_digital_file
    route.write_text("_SEEDED_LEAK = []\n" + code)
    return copy


def soak(app_src: Path, run_dir: Path) -> dict[str, Any]:
    argv = [sys.executable, "-m", "experiments", "run", "archivist-soak-short"]
    done = subprocess.run(
        [*argv, "--app-src", str(app_src), "--run-dir", str(run_dir)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=840,
        env=dict(os.environ),
    )
    verdict = run_dir / "verdict.json"
    assert verdict.exists(), done.stderr[-3000:]
    return json.loads(verdict.read_text())


def test_a_seeded_connection_leak_is_a_leak_finding_of_postgres_connections(
    tmp_path: Path,
) -> None:
    report = soak(seeded_copy(archivist_src(), tmp_path), tmp_path / "run")
    leaks = [f for f in report["findings"] or [] if f["kind"] == "leak"]
    assert any(f["endpoint"].startswith("postgres connections") for f in leaks), report["findings"]
    assert "route mix: " in leaks[0]["detail"] and "/min" in leaks[0]["detail"]

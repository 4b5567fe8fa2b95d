"""The leak finding on the real Archivist (ARCHIVIST_SRC; skipped without it): the short
soak (config/experiments/archivist-soak-short.toml) on a copy of the checkout whose
`GET /api/{id}` keeps one more PostgreSQL connection every other call (the seed
`connection-leak`) must report a `leak` of PostgreSQL connections; the checkout itself
is never edited (STYLE.md 8)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from testbed.hosted.seeding import in_order, load_seeds
from testbed.hosted.seeding import seeded_copy as copy_with_seeds
from tests.conftest import archivist_src

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900), pytest.mark.hosts_real_app]


def seeded_copy(src: Path, into: Path) -> Path:
    """A copy of the checkout with config/seeds/archivist-flask.toml `connection-leak`."""
    return copy_with_seeds(src, into, in_order(load_seeds("archivist-flask"), ["connection-leak"]))


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

"""The selftest on the real Archivist (ARCHIVIST_SRC; skipped without it): a copy whose
publication drops its VOD row is caught by the audit, the copy with publishing fixed
passes (a known defect fixed is no new problem), and the checkout is left as it was."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import archivist_src

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.hosts_real_app, pytest.mark.timeout(2400)]


def tree_state(src: Path) -> dict[str, float]:
    return {
        str(p.relative_to(src)): p.stat().st_mtime
        for p in src.rglob("*.py")
        if ".venv" not in p.parts and "__pycache__" not in p.parts
    }


def test_the_audit_catches_a_dropped_row_and_the_fix_passes(tmp_path: Path) -> None:
    src = archivist_src()
    before = tree_state(src)
    done = subprocess.run(
        [sys.executable, "-m", "experiments", "selftest", "--app-src", str(src),
         "--seeds", "publish-vod-row-dropped", "publish-fixed", "--run-dir", str(tmp_path)],
        capture_output=True, text=True, cwd=ROOT, timeout=2300, env=dict(os.environ),
    )  # fmt: skip
    table = (tmp_path / "selftest.md").read_text()
    assert done.returncode == 0, table + done.stderr[-2000:]
    assert "| publish-vod-row-dropped | defect | caught | audit" in table, table
    assert "| publish-fixed | fix | passed |" in table, table
    assert tree_state(src) == before  # no file of the checkout was written

"""The import contracts of pyproject.toml ([tool.importlinter]): components import only
downwards, the fault server needs nothing but itself, its modules form no cycle. Checked
by import-linter on every `make test`, so the next change that imports up fails here."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
PACKAGES = ("bench", "locustfiles", "experiments", "analysis", "workload", "testbed", "faults")


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` on the packages of TREE with TREE's pyproject.toml (no cache: a copy
    must be read as it is)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tree, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_the_import_contracts_hold() -> None:
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " broken" in done.stdout and "0 broken" in done.stdout


def test_an_upward_import_breaks_them(tmp_path: Path) -> None:
    """A copy of the tree in which the fault client imports the experiment engine: the
    contracts must fail and name that import."""
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns(
            "*.so", "__pycache__", "reference"))  # fmt: skip
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    client = tmp_path / "faults" / "client.py"
    client.write_text(client.read_text() + "\nimport experiments.runner  # noqa: E402\n")
    done = lint_imports(tmp_path)
    assert done.returncode == 1, done.stdout[-4000:] + done.stderr[-2000:]
    assert "Components import downwards only BROKEN" in done.stdout
    assert "faults.client -> experiments.runner" in done.stdout

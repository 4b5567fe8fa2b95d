"""Small frames and run folders with known answers for the analysis tests."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.load import Run, per_second_counts
from analysis.synthetic import synthetic_requests, write_run
from tests.conftest import run_module

ROOT = Path(__file__).resolve().parents[2]
PROJECT_CONFIG = ROOT / "config" / "gate.toml"


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m analysis ARGS` in a subprocess, to see exit code and stderr as CI does;
    `env` adds to this process's environment."""
    return run_module("analysis", *args, timeout=120, env=os.environ | (env or {}))


def without_named_checks(text: str) -> str:
    """The gate config minus its ``[absolute.names]`` entries (rows of the real workload,
    "GET /api/vods"...), which a synthetic run does not have."""
    out, in_names = [], False
    for line in text.splitlines():
        if line.startswith("["):
            in_names = line.strip() == "[absolute.names]"
        elif in_names and line.strip() and not line.lstrip().startswith("#"):
            continue
        out.append(line)
    return "\n".join(out) + "\n"


def without_absolute_checks(text: str) -> str:
    """A gate config minus its top-level `[absolute]` bounds ("p95 < 500ms" and the named
    rows'): whether a real run on this machine meets a fixed figure depends on the machine,
    so tests of real runs judge them by what holds anywhere."""
    return re.sub(r"(?ms)^\[absolute\].*?(?=^\[relative\])", "", text)


@pytest.fixture
def gate_config(tmp_path: Path) -> Path:
    """The project's config/gate.toml, every setting and rule, for synthetic runs."""
    path = tmp_path / "gate.toml"
    path.write_text(without_named_checks(PROJECT_CONFIG.read_text()))
    return path


def make_samples(
    latency_ms: list[float],
    names: list[str] | None = None,
    ok: list[bool] | None = None,
    t: list[float] | None = None,
    corrected_ms: list[float] | None = None,
) -> pd.DataFrame:
    n = len(latency_ms)
    lat = np.asarray(latency_ms, dtype=float)
    cor = lat if corrected_ms is None else np.asarray(corrected_ms, dtype=float)
    return pd.DataFrame(
        {
            "t": np.arange(n, dtype=float) if t is None else np.asarray(t, dtype=float),
            "name": names or ["a"] * n,
            "latency_ms": lat,
            "corrected_ms": cor,
            "has_intended": corrected_ms is not None,
            "ok": ok if ok is not None else [True] * n,
            "error": None,
        }
    )


def make_run(samples: pd.DataFrame, duration_s: float) -> Run:
    return Run(samples=samples, counts=per_second_counts(samples), duration_s=duration_s)


@pytest.fixture
def synthetic_pair(tmp_path: Path) -> tuple[Path, Path]:
    """Two small synthetic runs; the second has one endpoint twice as slow."""
    base = write_run(tmp_path / "base", synthetic_requests(20_000, names=4, duration_s=60, seed=1))
    slow = synthetic_requests(20_000, names=4, duration_s=60, seed=2, slow={"GET /api/2": 2.0})
    cur = write_run(
        tmp_path / "cur",
        slow,
        faults=[
            {
                "start": 1_700_000_010.0,
                "end": 1_700_000_020.0,
                "link": "postgres",
                "what": "latency 300ms",
            }
        ],
    )
    return base, cur

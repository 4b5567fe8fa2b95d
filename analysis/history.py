"""Trend over stored runs and its change points (ruptures' PELT, not hand-written)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import ruptures as rpt

from analysis.load import InputError, load_run
from analysis.stats import summarise

HISTORY_METRICS = ("p50", "p95", "p99", "rps", "error_rate")


def run_folders(root: Path) -> list[Path]:
    if not root.is_dir():
        raise InputError(f"{root}: runs folder does not exist")
    return sorted(p for p in root.iterdir() if p.is_dir() and any(p.glob("requests-*.parquet")))


def collect(root: Path) -> tuple[pd.DataFrame, list[str]]:
    """Overall figures per run, oldest first; plus one line per run that could not be read."""
    rows, skipped = [], []
    for folder in run_folders(root):
        try:
            run = load_run(folder)
        except InputError as exc:
            skipped.append(str(exc))
            continue
        overall = summarise(run.samples, run.duration_s).loc["ALL"]
        rows.append(
            {
                "run": folder.name,
                "start": run.meta.get("t0", 0.0),
                **{m: float(overall[m]) for m in HISTORY_METRICS},
            }
        )
    frame = pd.DataFrame(rows, columns=["run", "start", *HISTORY_METRICS])
    return frame.sort_values(["start", "run"]).reset_index(drop=True), skipped


def change_points(values: np.ndarray, min_size: int = 2, penalty: float = 3.0) -> list[int]:
    """Indexes where a new regime starts (PELT on the series scaled by its robust spread).

    Scaling by the median absolute deviation of successive differences makes the
    penalty mean "a shift of a few typical run-to-run wobbles".
    """
    values = np.asarray(values, dtype=float)
    if len(values) < 2 * min_size or not np.all(np.isfinite(values)):
        return []
    wobble = np.median(np.abs(np.diff(values))) * 1.4826
    scale = wobble if wobble > 0 else (np.std(values) or 1.0)
    signal = ((values - np.median(values)) / scale).reshape(-1, 1)
    algo = rpt.Pelt(model="l2", min_size=min_size, jump=1).fit(signal)
    bkps = algo.predict(pen=penalty * np.log(len(values)) * 2)
    return [int(b) for b in bkps if b < len(values)]

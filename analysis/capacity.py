"""The app's capacity from a step load: per-step figures and the knee. Pure functions.

A step load holds each user count for a while. The first seconds of a step are left out
(`settle_s`: new users' first look round, the queue that built up); the rest of it is
judged against the hypothesis' bounds. The knee is the last step that held before the
first one that did not: the users and requests/s the app sustained within its bounds.
A step with fewer than `min_samples` judged requests decides nothing and ends the search
(what comes after it was never judged on enough evidence).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

STEP_COLUMNS = ["step", "users", "start", "end", "requests", "rps", "error_rate", "p95_ms"]


@dataclass(frozen=True)
class StepWindow:
    users: int
    start: float  # epoch s: judged from here (after the settle time)
    end: float


@dataclass(frozen=True)
class Knee:
    users: int | None  # None: not even the first step held
    rps: float | None
    step: int | None  # 1-based index of the knee's step
    broke_at: int | None  # users of the first step that did not hold; None: none broke
    why: str  # what broke there, or why no knee could be given


def step_windows(
    stages: Sequence[tuple[float, int]], load_start: float, settle_s: float
) -> list[StepWindow]:
    """(until_s, users) stages -> the judged window of each, `settle_s` after its start."""
    out, begin = [], 0.0
    for until, users in stages:
        out.append(StepWindow(users, load_start + begin + settle_s, load_start + until))
        begin = until
    return out


def step_table(requests: pd.DataFrame, windows: Sequence[StepWindow]) -> pd.DataFrame:
    """Requests (t_start, latency_us, ok; optional bools `timed`: the p95 is of these, and
    `defect`: an answer the app always gives wrong, left out of the error rate) per step."""
    rows = []
    t = requests["t_start"].to_numpy()
    for i, w in enumerate(windows):
        part = requests[(t >= w.start) & (t < w.end)]
        timed = part[part["timed"].astype(bool)] if "timed" in part else part
        seconds = max(w.end - w.start, 1e-9)
        counted = part[~part["defect"].astype(bool)] if "defect" in part else part
        n = len(counted)
        rows.append(
            {
                "step": i + 1,
                "users": w.users,
                "start": w.start,
                "end": w.end,
                "requests": n,
                "timed": len(timed),
                "rps": n / seconds,
                "error_rate": float((~counted["ok"].astype(bool)).mean()) if n else np.nan,
                "p95_ms": (
                    float(np.percentile(timed["latency_us"] / 1000.0, 95)) if len(timed) else np.nan
                ),
            }
        )
    return pd.DataFrame(rows)


def knee(table: pd.DataFrame, holds: Callable[[pd.Series], str], min_samples: int = 0) -> Knee:
    """The last step that held before the first that broke.

    `holds(row)` says what broke in that step ("" when it held within the bounds)."""
    last = None
    for _, row in table.iterrows():
        if int(row["timed"]) < min_samples:
            why = f"step {int(row['step'])} ({int(row['users'])} users) had {int(row['timed'])} "
            why += f"judged requests, under the target {min_samples}: no verdict past it"
            return _knee(last, None, why)
        broke = holds(row)
        if broke:
            return _knee(last, int(row["users"]), f"at {int(row['users'])} users: {broke}")
        last = row
    return _knee(last, None, "every step held: the capacity is beyond the last step")


def _knee(last: pd.Series | None, broke_at: int | None, why: str) -> Knee:
    if last is None:
        return Knee(None, None, None, broke_at, why)
    return Knee(int(last["users"]), float(last["rps"]), int(last["step"]), broke_at, why)

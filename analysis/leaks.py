"""Leak findings: an app resource that grows without levelling off over a run (pure).

Connections checked out and never returned, memory or file handles that are never freed
all look the same from outside: a series (analysis.resources) that keeps rising for as
long as the load runs. Rising at all is not enough - a pool fills while users spawn, a
worker's memory settles after its first requests - so a series is a leak only when

- its Theil-Sen slope (robust: an outlier second does not make a trend) is above 0 with
  the configured confidence over the whole judged span, and also over its last third
  (what levels off has no slope there), and
- it grew by at least the metric's `min_growth` over the span (a slope of +1 connection
  in ten minutes is significant and harmless).

A leak fast enough to reach PostgreSQL's max_connections levels off there, and flat is
exactly what the last-third test reads as "filled and settled". So a connection series
that rose over the span and ends at 95% of the sampled max_connections is a leak too
("until it reached 199 of the server's 200"): the server refuses new connections then.

Samples while users spawn, during a fault and shortly after it are left out: an outage
empties a pool that refills after it, which is recovery, not a leak. The row says the
slope per minute, the growth and the route mix of the span, so the reader knows which
traffic fed it. Thresholds: config/resources.toml [leaks].
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import theilslopes

from analysis.findings import COLUMNS, NO_FAULT, endpoint
from analysis.load import InputError
from analysis.resources import (
    CONFIG_FILE,
    LIMIT_METRIC,
    UNITS,
    label,
    read_resources,
    resources_config,
    series,
)

LEAK = "leak"
CEILING_SHARE = 0.95  # at 95% of max_connections a pool can no longer grow: exhausted
ROUTES_SHOWN = 4


@dataclass(frozen=True)
class LeakRules:
    confidence: float = 0.99
    bucket_s: float = 10.0
    skip_first_s: float = 30.0
    after_fault_s: float = 20.0
    min_span_s: float = 120.0
    min_growth: dict[str, float] = field(default_factory=dict)


def load_leak_rules(path: Path = CONFIG_FILE) -> LeakRules:
    """[leaks] of config/resources.toml; InputError names the bad key."""
    section = dict(resources_config(path).get("leaks", {}))
    where = f"{path}: [leaks]"
    growth = section.pop("min_growth", {})
    known = set(LeakRules.__dataclass_fields__) - {"min_growth"}
    if unknown := sorted(set(section) - known):
        raise InputError(
            f"{where} has unknown keys {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    if not isinstance(growth, dict) or (bad := sorted(set(growth) - set(UNITS))):
        raise InputError(f"{where}.min_growth: unknown metrics {bad}; known: {', '.join(UNITS)}")
    try:
        rules = LeakRules(
            **{k: float(v) for k, v in section.items()},
            min_growth={k: float(v) for k, v in growth.items()},
        )
    except (TypeError, ValueError) as exc:
        raise InputError(f"{where}: {exc}") from None
    if not 0 < rules.confidence < 1 or rules.bucket_s <= 0 or rules.min_span_s <= 0:
        raise InputError(f"{where}: expected 0 < confidence < 1, bucket_s > 0, min_span_s > 0")
    return rules


@dataclass(frozen=True)
class Trend:
    """Theil-Sen slope of a series (per second) with its confidence interval."""

    slope: float
    low: float
    high: float
    n: int

    @property
    def rising(self) -> bool:
        return self.low > 0


def trend(t: np.ndarray, y: np.ndarray, confidence: float) -> Trend:
    """Theil-Sen slope of y over t with its `confidence` interval (Sen 1968, ties handled)."""
    if len(t) < 3 or np.ptp(t) <= 0:
        return Trend(0.0, 0.0, 0.0, len(t))
    slope, _, low, high = theilslopes(y, t, alpha=confidence)
    return Trend(float(slope), float(low), float(high), len(t))


def judged(values: pd.Series, faults: pd.DataFrame, start: float, rules: LeakRules) -> pd.Series:
    """The samples a series is judged on: after the spawn, outside faults and their
    aftermath, as medians per bucket (index: bucket start, epoch s) (pure)."""
    values = values.dropna()
    t = values.index.to_numpy(dtype=float)
    keep = t >= start + rules.skip_first_s
    for f in faults.itertuples(index=False):
        keep &= ~((t >= float(f.start)) & (t <= float(f.end) + rules.after_fault_s))
    kept = values[keep]
    if kept.empty:
        return kept
    buckets = np.floor((kept.index.to_numpy(dtype=float) - start) / rules.bucket_s)
    return kept.groupby(start + buckets * rules.bucket_s).median()


def route_mix(requests: pd.DataFrame, start: float, end: float) -> str:
    """The requests per route between start and end (epoch s), busiest first (pure)."""
    if requests.empty:
        return "no requests"
    t = requests["t_start"].to_numpy(dtype=float)
    window = requests[(t >= start) & (t <= end)]
    if "type" in window:
        window = window[window["type"].astype(str) != "WORKFLOW"]
    if window.empty:
        return "no requests"
    methods = window["type"].astype(str) if "type" in window else pd.Series("", index=window.index)
    keys = [endpoint(m, n) for m, n in zip(methods, window["name"].astype(str), strict=True)]
    counts = pd.Series(keys).value_counts()
    shown = ", ".join(f"{k} {n}" for k, n in counts.head(ROUTES_SHOWN).items())
    rest = len(counts) - ROUTES_SHOWN
    rate = len(window) / max(end - start, 1.0)
    more = f" and {rest} more routes" if rest > 0 else ""
    return f"{shown}{more} ({len(window)} requests, {rate:.1f}/s)"


def leaks(
    resources: pd.DataFrame,
    requests: pd.DataFrame,
    faults: pd.DataFrame,
    rules: LeakRules,
    t0: float | None = None,
) -> pd.DataFrame:
    """Findings rows (analysis.findings COLUMNS, kind "leak") of the series that grow
    without levelling off (pure).

    ``resources``: analysis.resources format; ``requests``: capture format; ``faults``:
    windows in epoch s; ``t0``: the load's start (default: the first sample).
    """
    wide = series(resources)
    if wide.empty:
        return pd.DataFrame(columns=list(COLUMNS))
    start = float(wide.index.min()) if t0 is None else t0
    rows = []
    for column in wide.columns:
        source, metric, key = (str(c) for c in column)
        if metric not in rules.min_growth:
            continue
        points = judged(wide[column], faults, start, rules)
        if len(points) < 6:
            continue
        t, y = points.index.to_numpy(dtype=float), points.to_numpy(dtype=float)
        span = float(t[-1] - t[0])
        if span < rules.min_span_s:
            continue
        whole = trend(t, y, rules.confidence)
        tail = t >= t[0] + 2 * span / 3
        last = trend(t[tail], y[tail], rules.confidence)
        growth = whole.slope * span
        ceiling = limit_of(wide, source, metric)
        # levelled off at the server's limit: exhausted, the worst kind of leak
        exhausted = ceiling is not None and y[-1] >= CEILING_SHARE * ceiling
        if not (whole.rising and (last.rising or exhausted)):
            continue
        if growth < rules.min_growth[metric]:
            continue
        unit = UNITS[metric]
        tail_words = (
            f"until it reached {y[-1]:g} of the server's {ceiling:g} (max_connections)"
            if exhausted and not last.rising
            else f"{60 * last.slope:+.2f}/min in the last third"
        )
        detail = (
            f"grows {60 * whole.slope:+.2f} {unit}/min "
            f"({100 * rules.confidence:g}% CI {60 * whole.low:+.2f}..{60 * whole.high:+.2f}), "
            f"{tail_words}; {growth:+.1f} {unit} over "
            f"{span:.0f} s (from {y[0]:g} to {y[-1]:g}; a leak from {rules.min_growth[metric]:g}); "
            f"route mix: {route_mix(requests, float(t[0]), float(t[-1]) + rules.bucket_s)}"
        )
        rows.append(
            {
                "kind": LEAK,
                "endpoint": label(source, metric, key),
                "status": 0,
                "count": round(growth),
                "requests": len(points),
                "share": 1.0,
                "first_s": float(t[0]) - start,
                "first_at": float(t[0]),
                "fault": NO_FAULT,
                "shape": "",
                "detail": detail,
                "log_source": "",
                "log_line": "",
                "log_last": "",
            }
        )
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    return table.sort_values("count", ascending=False, kind="stable").reset_index(drop=True)


def limit_of(wide: pd.DataFrame, source: str, metric: str) -> float | None:
    """The ceiling a series of `metric` runs into, when the run sampled one (pure):
    PostgreSQL's max_connections for its connection counts."""
    if (source, metric) != ("postgres", "connections"):
        return None
    columns = [c for c in wide.columns if tuple(c[:2]) == (source, LIMIT_METRIC)]
    if not columns:
        return None
    values = wide[columns[0]].dropna()
    return float(values.max()) if not values.empty else None


def with_leaks(
    table: pd.DataFrame,
    run_dir: Path,
    requests: pd.DataFrame,
    faults: pd.DataFrame,
    t0: float | None,
) -> pd.DataFrame:
    """The findings `table` of a run folder with its leak rows after the others."""
    found = leaks(read_resources(run_dir), requests, faults, load_leak_rules(), t0)
    if found.empty:
        return table
    if table.empty:
        return found
    return pd.concat([table, found], ignore_index=True)

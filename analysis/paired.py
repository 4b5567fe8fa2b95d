"""Paired gate: baseline and candidate measured in alternating slices of one run.

A gate that compares with a baseline recorded on another day cannot tell a slower machine
from slower code: on a busy 2-core box a clean run's p95 went from 5.9 to 112 ms. Here the
two stacks are loaded in turn, in short slices ordered A B B A A B ... (so a slow drift of
the machine favours neither side), and each pair of neighbouring slices is compared. A
hog that slows the machine slows both slices of a pair alike; the ratio survives.

The decision reuses :func:`analysis.gate.decide` and the ``[relative]`` limits of
config/gate.toml. The point change is the median of the per-pair changes (one disturbed
pair cannot move it); its confidence interval is the sign test's interval of that median
(``scipy.stats.quantile_test``), so a check fails only when the candidate is worse in
nearly every pair (with 6 pairs at 95%: all six) and the median change is beyond the limit.

Pure functions on a frame of slice samples: the ``samples`` columns of
:class:`analysis.load.Run` plus ``pair`` (0..) and ``side`` (``baseline``/``candidate``),
already cut to each slice's measured window of ``window_s`` seconds.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.stats import binomtest, quantile_test
from statsmodels.stats.proportion import confint_proportions_2indep

from analysis.config import GateConfig, PairedSettings, Relative, quantile_of
from analysis.gate import CHECK_COLUMNS, absolute_checks, decide, missing_row
from analysis.load import Run, per_second_counts
from analysis.stats import OVERALL, latency_metric

BASELINE = "baseline"
CANDIDATE = "candidate"
PAIR_COLUMNS = ["pair", "first", "baseline", "candidate", "change"]


def slice_order(slices: int) -> list[tuple[int, str]]:
    """(pair, side) of each slice: A B, B A, A B, ... so that drift cancels over pairs."""
    order: list[tuple[int, str]] = []
    for pair in range(slices // 2):
        sides = (BASELINE, CANDIDATE) if pair % 2 == 0 else (CANDIDATE, BASELINE)
        order += [(pair, side) for side in sides]
    return order


def pairs_needed(confidence: float, limit: int = 1000) -> int:
    """Fewest pairs whose sign test can exclude "no change" at this two-sided confidence."""
    for n in range(1, limit):
        if 1.0 - 2.0 * 0.5**n >= confidence:
            return n
    return limit


def slice_value(
    samples: pd.DataFrame, metric: str, window_s: float, paired: PairedSettings
) -> float:
    """One metric of one slice (one name or all); NaN when the slice has too few requests
    for it: ``min_requests`` in all, and ``min_tail`` above a percentile."""
    n = len(samples)
    if metric == "throughput":
        return n / window_s
    if n < paired.min_requests:
        return math.nan
    if metric == "error_rate":
        return float((~samples["ok"]).mean())
    return latency_metric(samples, metric, min_tail=paired.min_tail)


def pair_values(
    slices: pd.DataFrame, scope: str, metric: str, window_s: float, paired: PairedSettings
) -> pd.DataFrame:
    """Per pair: the metric of its baseline and its candidate slice (columns by side)."""
    chosen = slices if scope == OVERALL else slices[slices["name"] == scope]
    rows = []
    for pair in sorted(slices["pair"].unique()):
        row: dict[str, float] = {"pair": int(pair)}
        for side in (BASELINE, CANDIDATE):
            part = chosen[(chosen["pair"] == pair) & (chosen["side"] == side)]
            row[side] = slice_value(part, metric, window_s, paired)
        rows.append(row)
    return pd.DataFrame(rows, columns=["pair", BASELINE, CANDIDATE])


def pair_changes(values: pd.DataFrame, rule: Relative) -> pd.Series:
    """Change of each usable pair: candidate/baseline - 1, or the difference for pp rules."""
    base, cand = values[BASELINE], values[CANDIDATE]
    change = cand - base if rule.kind == "diff" else cand / base.where(base > 0) - 1.0
    return change.dropna()


def sign_interval(changes: np.ndarray, confidence: float) -> tuple[float, float]:
    """Distribution-free CI of the median change (sign test); NaN when too few pairs."""
    if len(changes) < pairs_needed(confidence):
        return math.nan, math.nan
    ci = quantile_test(changes, q=0.0, p=0.5).confidence_interval(confidence)
    return float(ci.low), float(ci.high)


def _relative_row(
    slices: pd.DataFrame, scope: str, rule: Relative, window_s: float, config: GateConfig
) -> dict[str, object]:
    if rule.metric == "error_rate":
        return _error_rate_row(slices, scope, rule, window_s, config)
    values = pair_values(slices, scope, rule.metric, window_s, config.paired)
    changes = pair_changes(values, rule)
    usable = values.loc[changes.index]
    n = len(changes)
    change = float(changes.median()) if n else math.nan
    lo, hi = sign_interval(changes.to_numpy(), config.settings.confidence)
    is_latency = quantile_of(rule.metric) is not None or rule.metric.endswith(("mean", "max"))
    delta = float((usable[CANDIDATE] - usable[BASELINE]).median()) if is_latency and n else math.nan
    status, why = decide(change, lo, hi, rule, delta, config.settings.min_effect_ms)
    worse = int((changes * rule.direction > 0).sum())
    if status == "skip":
        why = _skip_why(n, len(values), config)
    else:
        why = f"{why}; worse in {worse} of {n} pairs"
    return {
        "check": f"{scope}: {rule.text}",
        "scope": scope,
        "kind": "relative",
        "threshold": rule.text,
        "observed": float(usable[CANDIDATE].median()) if n else math.nan,
        "baseline": float(usable[BASELINE].median()) if n else math.nan,
        "change": change,
        "ci_low": lo,
        "ci_high": hi,
        "status": status,
        "detail": why,
    }


def _error_rate_row(
    slices: pd.DataFrame, scope: str, rule: Relative, window_s: float, config: GateConfig
) -> dict[str, object]:
    """An error-rate check: its size from the errors pooled over the usable pairs, its
    consistency from the pairs that differ.

    A median of per-pair changes cannot see a rare error: one call in 20 failing on a route
    called 40 times a slice leaves some pairs tied at no error on either side, so the median
    change stays below 5 pp and the sign test's interval keeps 0. Pooled counts see it
    (Newcombe's interval of the difference of two rates, statsmodels); a classic sign test
    over the pairs that differ (ties dropped) keeps one slice's burst of errors from making
    the candidate "worse" on its own.
    """
    values = pair_values(slices, scope, rule.metric, window_s, config.paired)
    changes = pair_changes(values, rule)
    n, needed = len(changes), pairs_needed(config.settings.confidence)
    if n < needed:
        return _skipped_row(scope, rule, n, len(values), config)
    chosen = slices if scope == OVERALL else slices[slices["name"] == scope]
    used = chosen[chosen["pair"].isin(values.loc[changes.index, "pair"])]
    failed = (~used["ok"]).groupby(used["side"]).agg(["sum", "size"])
    errors = {side: int(failed.loc[side, "sum"]) for side in (BASELINE, CANDIDATE)}
    calls = {side: int(failed.loc[side, "size"]) for side in (BASELINE, CANDIDATE)}
    base_rate, cand_rate = (errors[s] / calls[s] for s in (BASELINE, CANDIDATE))
    alpha = 1.0 - config.settings.confidence
    lo, hi = (
        float(x)
        for x in confint_proportions_2indep(
            errors[CANDIDATE],
            calls[CANDIDATE],
            errors[BASELINE],
            calls[BASELINE],
            method="newcomb",
            compare="diff",
            alpha=alpha,
        )
    )
    change = cand_rate - base_rate
    status, why = decide(change, lo, hi, rule)
    worse = int((changes * rule.direction > 0).sum())
    differ = worse + int((changes * rule.direction < 0).sum())
    consistent = differ > 0 and binomtest(worse, differ, 0.5).pvalue < alpha
    if status == "fail" and not consistent:
        status = "pass"
        why = "beyond the allowed change in the pooled errors, but not in most pairs (a burst)"
    counted = (
        f"{errors[CANDIDATE]} of {calls[CANDIDATE]} against {errors[BASELINE]} of {calls[BASELINE]}"
    )
    return {
        "check": f"{scope}: {rule.text}",
        "scope": scope,
        "kind": "relative",
        "threshold": rule.text,
        "observed": cand_rate,
        "baseline": base_rate,
        "change": change,
        "ci_low": lo,
        "ci_high": hi,
        "status": status,
        "detail": f"{why}; errors {counted}; worse in {worse} of the {differ} pairs that differ",
    }


def _skip_why(usable: int, pairs: int, config: GateConfig) -> str:
    return (
        f"{usable} of {pairs} pairs usable, a sign test at {config.settings.confidence:g} "
        f"needs {pairs_needed(config.settings.confidence)} (a slice needs "
        f"{config.paired.min_requests} requests, {config.paired.min_tail} above a percentile)"
    )


def _skipped_row(
    scope: str, rule: Relative, usable: int, pairs: int, config: GateConfig
) -> dict[str, object]:
    nan = math.nan
    return {
        "check": f"{scope}: {rule.text}",
        "scope": scope,
        "kind": "relative",
        "threshold": rule.text,
        "observed": nan,
        "baseline": nan,
        "change": nan,
        "ci_low": nan,
        "ci_high": nan,
        "status": "skip",
        "detail": _skip_why(usable, pairs, config),
    }


def candidate_run(slices: pd.DataFrame, window_s: float) -> Run:
    """The candidate's slices pooled as one run, for the absolute thresholds."""
    return side_run(slices, window_s, CANDIDATE)


def side_run(slices: pd.DataFrame, window_s: float, side: str) -> Run:
    """One side's slices pooled as one run, its counted windows one after another in pair
    order (a slice's first counted second at pair * window_s), for the report's charts."""
    mine = slices[slices["side"] == side]
    start = mine.groupby("pair")["t"].transform("min") if len(mine) else mine["t"]
    t = (mine["t"] - start) + mine["pair"] * window_s
    pooled = mine.assign(t=t).drop(columns=["pair", "side"]).reset_index(drop=True)
    pairs = int(slices["pair"].nunique())
    return Run(samples=pooled, counts=per_second_counts(pooled), duration_s=pairs * window_s)


def paired_checks(slices: pd.DataFrame, window_s: float, config: GateConfig) -> pd.DataFrame:
    """Every check of the paired gate: absolute ones on the pooled candidate slices,
    relative ones pair by pair (under the limits of ``config.for_pairs()``); the gate
    passes when no status is "fail"."""
    config = config.for_pairs()
    rows = [_relative_row(slices, OVERALL, r, window_s, config) for r in config.relative_overall]
    names = sorted(str(n) for n in slices["name"].unique())
    rows += [
        _relative_row(slices, name, r, window_s, config)
        for name in names
        for r in config.relative_per_name
    ]
    # A name the baseline called often but the candidate never did: a broken workload.
    counts = slices.groupby(["side", "name"], observed=True).size()
    base_names = counts.get(BASELINE, pd.Series(dtype=int))
    cand_names = set(counts.get(CANDIDATE, pd.Series(dtype=int)).index)
    rows += [
        missing_row(name, "the baseline's slices called it, the candidate's never did")
        for name, n in base_names.items()
        if n >= config.paired.min_requests and name not in cand_names
    ]
    frames = [absolute_checks(candidate_run(slices, window_s), config)]
    frames.append(pd.DataFrame(rows, columns=CHECK_COLUMNS))
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame(columns=CHECK_COLUMNS)
    return pd.concat(frames, ignore_index=True)


def pair_table(
    slices: pd.DataFrame, window_s: float, paired: PairedSettings, metric: str = "p95"
) -> pd.DataFrame:
    """Overall ``metric`` per pair, for the report: which side ran first, both values, change."""
    values = pair_values(slices, OVERALL, metric, window_s, paired)
    values["first"] = [BASELINE if p % 2 == 0 else CANDIDATE for p in values["pair"]]
    values["change"] = values[CANDIDATE] / values[BASELINE] - 1.0
    return values[PAIR_COLUMNS]

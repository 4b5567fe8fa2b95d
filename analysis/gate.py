"""The CI performance gate: absolute thresholds and regressions against a baseline.

A relative check fails only when the change is both statistically significant (its
confidence interval excludes "no change") and larger than the configured magnitude.
Significant-but-small changes pass (a quiet machine resolves tiny shifts we do not care
about); large-but-not-significant ones pass with a note (a noisy run cannot prove them).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Hashable

import pandas as pd

from analysis.compare import compare_runs
from analysis.config import Absolute, GateConfig, Relative, quantile_of
from analysis.load import Run
from analysis.stats import OVERALL, metric_value

CHECK_COLUMNS = [
    "check",
    "scope",
    "kind",
    "metric",
    "threshold",
    "observed",
    "baseline",
    "change",
    "ci_low",
    "ci_high",
    "status",
    "detail",
]


def decide(
    change: float,
    ci_low: float,
    ci_high: float,
    rule: Relative,
    delta_ms: float = math.nan,
    min_effect_ms: float = 0.0,
) -> tuple[str, str]:
    """Regression decision for one relative check: ("pass"|"fail"|"skip", why).

    ``change`` and the CI are current/baseline - 1 for ratio rules and current -
    baseline for diff rules (error_rate in pp). For latency rules ``delta_ms`` is the
    change in milliseconds: below ``min_effect_ms`` a change is never large, because a
    few ms come and go with the scheduler on a shared 2-core box whatever the ratio says.
    """
    if any(math.isnan(x) for x in (change, ci_low, ci_high)):
        return "skip", "not enough data for a confidence interval"
    worse = change * rule.direction
    significant = ci_low > 0 if rule.direction > 0 else ci_high < 0
    large = worse > rule.limit
    tiny = not math.isnan(delta_ms) and delta_ms * rule.direction < min_effect_ms
    if large and tiny:
        return "pass", f"beyond the allowed change but by less than {min_effect_ms:g} ms"
    if significant and large:
        return "fail", "regression: significant and beyond the allowed change"
    if significant:
        return "pass", "significant but within the allowed change"
    if large:
        return "pass", "beyond the allowed change but not significant (noise)"
    return "pass", "no significant change"


def _unknown_name(scope: str, names: list[str]) -> str:
    """Why a named check found no row, with the rows it probably meant."""
    near = [n for n in names if n.split(" ", 1)[-1] == scope]
    near += difflib.get_close_matches(scope, [n for n in names if n not in near], n=3)
    hint = f"; did you mean {', '.join(repr(n) for n in near)}?" if near else ""
    return f'no requests named {scope!r} in the run (rows are "METHOD name"){hint}'


def _absolute_row(run: Run, scope: str, rule: Absolute) -> dict[str, object]:
    samples = run.samples if scope == OVERALL else run.samples[run.samples["name"] == scope]
    if samples.empty:
        names = sorted(str(n) for n in run.samples["name"].unique())
        return {
            "check": f"{scope}: {rule.text}",
            "scope": scope,
            "kind": "absolute",
            "metric": rule.metric,
            "threshold": rule.text,
            "observed": math.nan,
            "status": "fail",
            "detail": _unknown_name(scope, names),
        }
    value = metric_value(samples, run.duration_s, rule.metric)
    ok = rule.passes(value)
    return {
        "check": f"{scope}: {rule.text}",
        "scope": scope,
        "kind": "absolute",
        "metric": rule.metric,
        "threshold": rule.text,
        "observed": value,
        "status": "pass" if ok else "fail",
        "detail": "within threshold" if ok else "threshold crossed",
    }


def absolute_checks(run: Run, config: GateConfig) -> pd.DataFrame:
    rows = [_absolute_row(run, OVERALL, r) for r in config.absolute_overall]
    for name, rules in config.absolute_names.items():
        rows += [_absolute_row(run, name, r) for r in rules]
    return pd.DataFrame(rows, columns=CHECK_COLUMNS)


def gate_metrics(config: GateConfig) -> tuple[str, ...]:
    """Metrics the relative rules need from a comparison."""
    return tuple(sorted({r.metric for r in (*config.relative_overall, *config.relative_per_name)}))


def relative_checks(
    baseline: Run, run: Run, config: GateConfig, changes: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Every relative rule against the baseline: overall, and per name for per_name rules.

    ``changes`` (from :func:`compare_runs` with the same settings) is reused when it holds
    every metric needed, so a report and the gate bootstrap only once.
    """
    metrics = gate_metrics(config)
    if not metrics:
        return pd.DataFrame(columns=CHECK_COLUMNS)
    if changes is None or not set(metrics) <= set(changes["metric"]):
        changes = compare_runs(baseline, run, config.settings, metrics)
    rows = []
    scoped = [(OVERALL, r) for r in config.relative_overall]
    names = sorted(set(changes["name"]) - {OVERALL})
    scoped += [(n, r) for n in names for r in config.relative_per_name]
    # A name the baseline saw often but this run never called means a broken workload.
    seen = baseline.counts.groupby("name")["n"].sum()
    seen = seen[seen >= config.settings.min_samples]
    missing = sorted(set(seen.index) - set(run.samples["name"].unique()))
    indexed = changes.set_index(["name", "metric"])
    for scope, rule in scoped:
        c = indexed.loc[(scope, rule.metric)]
        is_latency = quantile_of(rule.metric) is not None or rule.metric.endswith(("mean", "max"))
        delta = c["current"] - c["baseline"] if is_latency else math.nan
        status, why = decide(
            c["change"], c["ci_low"], c["ci_high"], rule, delta, config.settings.min_effect_ms
        )
        if status == "skip" and c.get("shortfall"):
            why = str(c["shortfall"])
        rows.append(
            {
                "check": f"{scope}: {rule.text}",
                "scope": scope,
                "kind": "relative",
                "metric": rule.metric,
                "threshold": rule.text,
                "observed": c["current"],
                "baseline": c["baseline"],
                "change": c["change"],
                "ci_low": c["ci_low"],
                "ci_high": c["ci_high"],
                "status": status,
                "detail": why,
            }
        )
    rows += [missing_row(name, "in the baseline but no request in this run") for name in missing]
    return pd.DataFrame(rows, columns=CHECK_COLUMNS)


def missing_row(name: Hashable, detail: str) -> dict[str, object]:
    """The failed check of an endpoint the baseline called and the candidate never did: a
    broken workload, not a fast one, so it must not pass silently."""
    return {
        "check": f"{name}: present",
        "scope": name,
        "kind": "relative",
        "threshold": "endpoint present",
        "status": "fail",
        "detail": detail,
    }


def evaluate(
    run: Run,
    config: GateConfig,
    baseline: Run | None = None,
    changes: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """All checks of the gate as one frame; the gate passes when no status is "fail"."""
    frames = [absolute_checks(run, config)]
    if baseline is not None:
        frames.append(relative_checks(baseline, run, config, changes))
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame(columns=CHECK_COLUMNS)
    return pd.concat(frames, ignore_index=True)


def passed(checks: pd.DataFrame) -> bool:
    return not (checks["status"] == "fail").any()


def tally(checks: pd.DataFrame) -> dict[str, int]:
    """Checks per status: a gate that skipped most of its checks says so in its headline."""
    counts = checks["status"].value_counts() if not checks.empty else pd.Series(dtype=int)
    return {s: int(counts.get(s, 0)) for s in ("pass", "fail", "skip")}

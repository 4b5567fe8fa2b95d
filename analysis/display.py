"""Human formatting of the analysis frames, shared by the terminal, Markdown and HTML.

The analysis functions return plain numbers (a fraction for an error rate, a ratio for a
change, NaN when there is none) so that they stay easy to test and combine; here each
number is written in the unit its threshold uses: latency in ms, error rate in percent
("5.27%" beside "error_rate < 1%"), changes as "+9.5%" or, for error rate, "+0.40pp",
timestamps as ISO dates, and "n/a" where there is no value.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable

import pandas as pd

from analysis.config import quantile_of

NONE = "n/a"
_ICON = {"pass": "✅ pass", "fail": "❌ FAIL", "skip": "⚪ skip"}


def _num(x: object) -> float | None:
    """``x`` as a float, None when absent (None, NaN, NA) or not a number."""
    try:
        v = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def _missing(x: object) -> bool:
    return _num(x) is None


def is_latency(metric: str) -> bool:
    return quantile_of(metric) is not None or metric.removeprefix("corrected_") in ("mean", "max")


def milliseconds(x: object) -> str:
    v = _num(x)
    if v is None:
        return NONE
    digits = 2 if abs(v) < 10 else 1 if abs(v) < 1000 else 0
    return f"{v:.{digits}f} ms"


def percent(x: object) -> str:
    """A fraction as a percentage: 0.05274 -> "5.27%"."""
    v = _num(x)
    return NONE if v is None else f"{100.0 * v:.2f}%"


def value(metric: object, x: object) -> str:
    """One observed value in its metric's unit."""
    v = _num(x)
    if v is None:
        return NONE
    metric = str(metric)
    if metric == "error_rate":
        return percent(v)
    if metric == "throughput":
        return f"{v:.1f}/s"
    if is_latency(metric):
        return milliseconds(v)
    return f"{v:.4g}"


def change(metric: object, x: object) -> str:
    """A change as the gate states its limits: "+9.5%", or "+0.40pp" for error rate."""
    v = _num(x)
    if v is None:
        return NONE
    if str(metric) == "error_rate":
        return f"{100.0 * v:+.2f}pp"
    return f"{100.0 * v:+.1f}%"


def interval(metric: object, low: object, high: object) -> str:
    if _missing(low) or _missing(high):
        return NONE
    return f"[{change(metric, low)}, {change(metric, high)}]"


def iso_time(epoch_s: object) -> str:
    """Epoch seconds -> "2026-11-23T08:15:42Z"."""
    v = _num(epoch_s)
    if v is None:
        return NONE
    when = dt.datetime.fromtimestamp(v, dt.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def headline(counts: dict[str, int]) -> str:
    """ "24 checks: 4 passed, 2 failed, 18 skipped" (skips are never hidden)."""
    total = sum(counts.values())
    return (
        f"{total} checks: {counts.get('pass', 0)} passed, {counts.get('fail', 0)} failed, "
        f"{counts.get('skip', 0)} skipped"
    )


def checks_view(checks: pd.DataFrame, icons: bool = False) -> pd.DataFrame:
    """The gate's checks as text: values in their metric's unit, change with its CI."""
    rows = []
    for _, r in checks.iterrows():
        metric = r.get("metric")
        relative = r.get("kind") == "relative"
        shown = change(metric, r.get("change")) if relative else NONE
        if shown != NONE and not _missing(r.get("ci_low")):
            shown += " " + interval(metric, r.get("ci_low"), r.get("ci_high"))
        status = str(r["status"])
        rows.append(
            {
                "status": _ICON.get(status, status) if icons else status,
                "check": str(r["check"]),
                "observed": value(metric, r.get("observed")),
                "baseline": value(metric, r.get("baseline")),
                "change [CI]": shown,
                "detail": str(r["detail"]),
            }
        )
    columns = ["status", "check", "observed", "baseline", "change [CI]", "detail"]
    return pd.DataFrame(rows, columns=columns)


def changes_view(changes: pd.DataFrame) -> pd.DataFrame:
    """A comparison as text, like the gate: "+9.5% [+6.1%, +8.9%]"; why a CI is missing."""
    rows = []
    for _, r in changes.iterrows():
        metric = r["metric"]
        rows.append(
            {
                "name": str(r["name"]),
                "metric": str(metric),
                "baseline": value(metric, r["baseline"]),
                "current": value(metric, r["current"]),
                "change": change(metric, r["change"]),
                "CI": interval(metric, r["ci_low"], r["ci_high"]),
                "requests": f"{int(r['n_baseline'])} / {int(r['n_current'])}",
                "note": str(r.get("shortfall") or ""),
            }
        )
    columns = ["name", "metric", "baseline", "current", "change", "CI", "requests", "note"]
    return pd.DataFrame(rows, columns=columns)


def summary_view(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per name (and ALL): requests, req/s, error rate, percentiles in ms."""
    extra = [c for c in ("corrected_p95", "corrected_p99") if c in summary]
    rows = []
    for name, r in summary.iterrows():
        row = {
            "name": str(name),
            "requests": str(int(r["requests"])),
            "req/s": value("throughput", r["rps"]).removesuffix("/s"),
            "error rate": percent(r["error_rate"]),
            "p50": milliseconds(r["p50"]),
            "p95": milliseconds(r["p95"]),
            "p99": milliseconds(r["p99"]),
        }
        row.update({c: milliseconds(r[c]) for c in extra})
        rows.append(row)
    columns = ["name", "requests", "req/s", "error rate", "p50", "p95", "p99", *extra]
    return pd.DataFrame(rows, columns=columns)


def history_view(history: pd.DataFrame, change_points: Iterable[int]) -> pd.DataFrame:
    """Runs oldest first, start as an ISO date, a marker on each change point."""
    cps = set(change_points)
    rows = []
    for i, r in enumerate(history.itertuples(index=False)):
        rows.append(
            {
                "run": str(r.run),
                "start": iso_time(r.start),
                "p50": milliseconds(r.p50),
                "p95": milliseconds(r.p95),
                "p99": milliseconds(r.p99),
                "req/s": value("throughput", r.rps).removesuffix("/s"),
                "error rate": percent(r.error_rate),
                "change point": "◀ new level" if i in cps else "",
            }
        )
    columns = ["run", "start", "p50", "p95", "p99", "req/s", "error rate", "change point"]
    return pd.DataFrame(rows, columns=columns)


def markdown_table(frame: pd.DataFrame, code: tuple[str, ...] = ()) -> str:
    """A frame of strings as a Markdown table; ``code`` columns are set in backticks."""
    head = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in frame.iterrows():
        cells = [f"`{r[c]}`" if c in code else str(r[c]).replace("|", "\\|") for c in frame.columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)

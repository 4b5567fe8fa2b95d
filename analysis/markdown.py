"""Markdown for a CI job summary: the run's table and the gate's checks."""

from __future__ import annotations

import math

import pandas as pd

_ICON = {"pass": "✅ pass", "fail": "❌ FAIL", "skip": "⚪ skip"}


def _num(x: object, fmt: str = "{:.1f}") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return fmt.format(x)


def summary_table(summary: pd.DataFrame) -> str:
    """One row per name (and ALL): requests, req/s, errors, p50/p95/p99 (ms)."""
    extra = [c for c in ("corrected_p95", "corrected_p99") if c in summary]
    head = ["name", "requests", "req/s", "error rate", "p50 ms", "p95 ms", "p99 ms", *extra]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in summary.iterrows():
        cells = [
            f"`{name}`",
            str(int(r["requests"])),
            _num(r["rps"]),
            _num(100 * r["error_rate"], "{:.2f}%"),
            _num(r["p50"], "{:.2f}"),
            _num(r["p95"], "{:.2f}"),
            _num(r["p99"], "{:.2f}"),
            *(_num(r[c], "{:.2f}") for c in extra),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _change(row: pd.Series) -> str:
    if row["kind"] != "relative" or pd.isna(row.get("change")):
        return "-"
    unit = "pp" if "pp" in str(row["threshold"]) else "%"
    k = 100.0
    return f"{k * row['change']:+.1f}{unit} [{k * row['ci_low']:+.1f}, {k * row['ci_high']:+.1f}]"


def checks_table(checks: pd.DataFrame) -> str:
    head = ["status", "check", "observed", "baseline", "change [CI]", "detail"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in checks.iterrows():
        cells = [
            _ICON.get(str(r["status"]), str(r["status"])),
            f"`{r['check']}`",
            _num(r.get("observed"), "{:.4g}"),
            _num(r.get("baseline"), "{:.4g}"),
            _change(r),
            str(r["detail"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def gate_markdown(
    title: str, summary: pd.DataFrame, checks: pd.DataFrame, ok: bool, baseline: str | None
) -> str:
    verdict = "✅ **Performance gate passed**" if ok else "❌ **Performance gate failed**"
    against = f" against baseline `{baseline}`" if baseline else ""
    failed = int((checks["status"] == "fail").sum()) if not checks.empty else 0
    parts = [
        f"## {title}",
        f"{verdict}{against}: {len(checks)} checks, {failed} failed.",
        "",
        checks_table(checks) if not checks.empty else "_no checks configured_",
        "",
        "### Run",
        summary_table(summary),
        "",
    ]
    return "\n".join(parts)


def pair_markdown(pairs: pd.DataFrame, candidate: str = "candidate") -> str:
    """Overall p95 of each pair of slices: the evidence behind the paired gate."""
    head = ["pair", "first", "baseline p95 ms", f"{candidate} p95 ms", "change"]
    lines = ["### Pairs", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in pairs.iterrows():
        cells = [
            str(int(r["pair"]) + 1),
            str(r["first"]),
            _num(r["baseline"], "{:.2f}"),
            _num(r["candidate"], "{:.2f}"),
            _num(100 * r["change"], "{:+.1f}%"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"

"""Markdown for a CI job summary and the terminal: the run's table, the gate's checks and a
comparison, each number in its metric's unit (see :mod:`analysis.display`)."""

from __future__ import annotations

import pandas as pd

from analysis.display import (
    change,
    changes_view,
    checks_view,
    headline,
    markdown_table,
    milliseconds,
    summary_view,
)
from analysis.gate import tally


def summary_table(summary: pd.DataFrame) -> str:
    """One row per name (and ALL): requests, req/s, error rate, p50/p95/p99."""
    return markdown_table(summary_view(summary), code=("name",))


def checks_table(checks: pd.DataFrame) -> str:
    return markdown_table(checks_view(checks, icons=True), code=("check",))


def changes_table(changes: pd.DataFrame) -> str:
    """Every metric of every name against the baseline, formatted like the gate."""
    return markdown_table(changes_view(changes), code=("name",))


def gate_markdown(
    title: str, summary: pd.DataFrame, checks: pd.DataFrame, ok: bool, baseline: str | None
) -> str:
    verdict = "✅ **Performance gate passed**" if ok else "❌ **Performance gate failed**"
    against = f" against baseline `{baseline}`" if baseline else ""
    parts = [
        f"## {title}",
        f"{verdict}{against}: {headline(tally(checks))}.",
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
    head = ["pair", "first", "baseline p95", f"{candidate} p95", "change"]
    lines = ["### Pairs", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in pairs.iterrows():
        cells = [
            str(int(r["pair"]) + 1),
            str(r["first"]),
            milliseconds(r["baseline"]),
            milliseconds(r["candidate"]),
            change("p95_ms", r["change"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"

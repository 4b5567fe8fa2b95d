"""Findings grouped by cause: one row per (kind, fault, status, shape, log signature).

With Redis down the Flask Archivist answers an HTML 500 on every route, for one reason
(its rate limiter keeps counters in Redis). One finding per route lists the same defect
fifteen times; one row per cause lists it once, with its routes and counts, and keeps
the per-route rows beneath it (the CLI indents them, the HTML report folds them in a
<details>). The per-route rows stay the data (JSON, verdict.json), each with its cause.

A cause is the same across routes only for the kinds given as ``across`` (5xx answers);
a slow route is its own cause. Pure functions of the findings table.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import pandas as pd

from analysis.log_match import signature

CAUSE_COLUMNS = (
    "cause",
    "kind",
    "fault",
    "status",
    "shape",
    "signature",
    "endpoints",
    "rows",
    "count",
    "requests",
    "first_s",
    "detail",
)
LOG_SHOWN = 160  # a per-route log line is cut here in the grouped text


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def with_causes(table: pd.DataFrame, across: Iterable[str]) -> pd.DataFrame:
    """The table with ``signature`` (its log line, normalised) and ``cause`` (a short id of
    kind, fault, status, shape and signature, plus the endpoint for a kind not in
    `across`) per row; the same cause gets the same id in every run (pure)."""
    grouped = set(across)
    signatures, causes = [], []
    for row in table.itertuples(index=False):
        sig = signature(_text(getattr(row, "log_line", "")), _text(getattr(row, "log_last", "")))
        parts = [str(row.kind), str(row.fault), str(row.status), _text(row.shape), sig]
        if row.kind not in grouped:
            parts.append(str(row.endpoint))
        signatures.append(sig)
        causes.append(hashlib.sha1("\x1f".join(parts).encode()).hexdigest()[:8])
    return table.assign(signature=signatures, cause=causes)


def by_cause(table: pd.DataFrame) -> pd.DataFrame:
    """One row per cause of a table with causes (CAUSE_COLUMNS), in the table's order of
    first appearance: its endpoints, how many rows, failing answers and requests (pure)."""
    rows = []
    for cause, group in table.groupby("cause", sort=False):
        head = group.iloc[0]
        rows.append(
            {
                "cause": cause,
                "kind": head["kind"],
                "fault": head["fault"],
                "status": int(head["status"]),
                "shape": _text(head["shape"]),
                "signature": head["signature"],
                "endpoints": tuple(group["endpoint"]),
                "rows": len(group),
                "count": int(group["count"].sum()),
                "requests": int(group["requests"].sum()),
                "first_s": float(group["first_s"].min()),
                "detail": head["detail"],
            }
        )
    return pd.DataFrame(rows, columns=list(CAUSE_COLUMNS))


def _log_lines(row: Any, indent: str) -> list[str]:
    line, last = _text(row.log_line), _text(row.log_last)
    if line:
        out = [f"{indent}log {row.log_source}: {line}"]
        if last and last != line:
            out.append(f"{indent}... {last}")
        return out
    note = _text(getattr(row, "log_note", ""))
    return [f"{indent}log: {note}"] if note else []


def _row_line(row: Any) -> str:
    if row.kind == "leak":  # analysis.leaks: a resource's trend, no answer to count
        return f"  {row.kind:<12} {row.endpoint:<34} {row.detail}"
    status = str(row.status) + (f" ({row.shape})" if _text(row.shape) else "")
    return (
        f"  {row.kind:<12} {row.endpoint:<34} {status:<18} "
        f"{row.count} of {row.requests} ({100 * row.share:.0f}%), "
        f"first at {row.first_s:.1f} s, {row.fault}; {row.detail}"
    )


def causes_text(table: pd.DataFrame) -> str:
    """The findings as a person reads them at the end of a run: one line per cause; a cause
    of several routes lists them, then one indented line per route with the log line of
    that route's own handler (or why there is none) (pure)."""
    if table.empty:
        return "findings: none"
    causes = by_cause(table)
    lines = [f"findings: {len(table)} in {len(causes)} cause(s)"]
    for cause in causes.itertuples(index=False):
        members = table[table["cause"] == cause.cause]
        if cause.rows == 1:
            row = next(members.itertuples(index=False))
            lines += [_row_line(row), *_log_lines(row, "      ")]
            continue
        status = str(cause.status) + (f" ({cause.shape})" if cause.shape else "")
        share = 100 * cause.count / cause.requests if cause.requests else 100.0
        lines.append(
            f"  {cause.kind:<12} {f'{cause.rows} routes':<34} {status:<18} "
            f"{cause.count} of {cause.requests} ({share:.0f}%), first at {cause.first_s:.1f} s, "
            f"{cause.fault}; {cause.detail}"
        )
        lines.append(f"      cause {cause.cause}: {cause.signature or 'no log line'}")
        lines.append(f"      routes: {', '.join(cause.endpoints)}")
        for row in members.itertuples(index=False):
            line, note = _text(row.log_line), _text(getattr(row, "log_note", ""))
            log = f"log {row.log_source}: {line[:LOG_SHOWN]}" if line else f"log: {note or '-'}"
            lines.append(
                f"      - {row.endpoint:<32} {row.count} of {row.requests}, "
                f"first at {row.first_s:.1f} s; {log}"
            )
    return "\n".join(lines)

"""Self-contained HTML report: tables and charts embedded as base64 PNG, no external link."""

from __future__ import annotations

import html
from typing import Any

import pandas as pd

from analysis import charts
from analysis.causes import by_cause, with_causes
from analysis.display import changes_view, checks_view, headline, summary_view
from analysis.experiment_report import experiment_sections
from analysis.findings import ACROSS_ROUTES
from analysis.gate import tally
from analysis.load import Run
from analysis.resources import series
from analysis.stats import timeseries

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px}
th{background:#f3f3f3}.fail{color:#b00;font-weight:bold}.pass{color:#070}
img{max-width:100%;margin:0.5em 0}
"""


def _table(frame: pd.DataFrame) -> str:
    """A frame already formatted as text (:mod:`analysis.display`), escaped."""
    return frame.to_html(index=False, border=0, na_rep="n/a", escape=True)


def _faults(faults: pd.DataFrame) -> pd.DataFrame:
    return faults.assign(
        start=[f"{x:.1f} s" for x in faults["start"]], end=[f"{x:.1f} s" for x in faults["end"]]
    )


def workload_sections(meta: dict[str, Any]) -> list[str]:
    """What the workload did not do (skipped tasks and why, problems, notes) and the bytes
    each link carried, from meta.json; nothing when the run recorded neither."""
    parts: list[str] = []
    coverage = meta.get("coverage")
    if isinstance(coverage, dict):
        parts.append("<h2>Workload: tasks skipped or not exercised</h2>")
        for css, key, word in (
            ("fail", "problems", "PROBLEM"),
            ("", "skipped", "skipped"),
            ("", "notes", "note"),
        ):
            items = coverage.get(key) or []
            parts += [f"<p class='{css}'>{word}: {html.escape(str(i))}</p>" for i in items]
        if not any(coverage.get(k) for k in ("problems", "skipped", "notes")):
            parts.append("<p class='pass'>every selected task ran and sent requests</p>")
    links = meta.get("links")
    if isinstance(links, dict):
        frame = pd.DataFrame(links).T.fillna(0).astype(int).rename_axis("link").reset_index()
        parts += ["<h2>Bytes per link (fault server)</h2>", _table(frame)]
    return parts


FINDINGS_HEAD = ("kind", "endpoint", "status", "shape", "count", "first seen", "fault", "detail")


def _finding_cells(f: Any) -> list[str]:
    if f.kind == "leak":  # analysis.leaks: a resource's trend, no answer to count
        leak = [f.kind, f.endpoint, "-", "-", "-", f"{f.first_s:.1f} s", f.fault, f.detail]
        return [html.escape(c) for c in leak]
    return [
        f"<span class='fail'>{html.escape(f.kind)}</span>",
        f"<code>{html.escape(f.endpoint)}</code>",
        str(f.status),
        html.escape(f.shape or "-"),
        f"{f.count} of {f.requests} ({100 * f.share:.0f}%)",
        f"{f.first_s:.1f} s",
        html.escape(f.fault),
        html.escape(f.detail),
    ]


def _log_cell(f: Any) -> str:
    """The line the route's own handler logged, or why there is none ("" for neither)."""
    line = f.log_line if isinstance(f.log_line, str) else ""
    if line:
        last = f.log_last if isinstance(f.log_last, str) and f.log_last != line else ""
        log = html.escape(line) + (f"<br>... {html.escape(last)}" if last else "")
        return f"log {html.escape(f.log_source)}: <code>{log}</code>"
    note = getattr(f, "log_note", "")
    return f"log: {html.escape(note)}" if isinstance(note, str) and note else ""


def _tr(cells: list[str]) -> str:
    return "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def _span(content: str) -> str:
    return f"<tr><td></td><td colspan='{len(FINDINGS_HEAD) - 1}'>{content}</td></tr>"


def _cause_rows(cause: Any, members: pd.DataFrame) -> list[str]:
    """A cause of several routes: one row with its routes and counts, its log signature,
    and the per-route rows (each with its own log line) folded in a <details>."""
    share = cause.count / cause.requests if cause.requests else 1.0
    routes = ", ".join(f"<code>{html.escape(e)}</code>" for e in cause.endpoints)
    cells = [
        f"<span class='fail'>{html.escape(cause.kind)}</span>",
        f"{cause.rows} routes: {routes}",
        str(cause.status),
        html.escape(cause.shape or "-"),
        f"{cause.count} of {cause.requests} ({100 * share:.0f}%)",
        f"{cause.first_s:.1f} s",
        html.escape(cause.fault),
        html.escape(cause.detail),
    ]
    inner = []
    for f in members.itertuples(index=False):
        inner.append(_tr(_finding_cells(f)))
        if log := _log_cell(f):
            inner.append(_span(log))
    head = "".join(f"<th>{h}</th>" for h in FINDINGS_HEAD)
    details = (
        f"<details><summary>the {cause.rows} routes, one row each</summary><table><thead>"
        f"<tr>{head}</tr></thead><tbody>{''.join(inner)}</tbody></table></details>"
    )
    signature = html.escape(cause.signature) if cause.signature else "(no log line matched)"
    return [_tr(cells), _span(f"cause {cause.cause}: <code>{signature}</code>{details}")]


def findings_section(findings: pd.DataFrame | str) -> list[str]:
    """The Findings heading and table: one row per cause (analysis.causes), a cause of
    several routes expandable to its per-route rows, each with its handler's log line."""
    parts = ["<h2>Findings</h2>"]
    if isinstance(findings, str):
        return [*parts, f"<p>Not computed: {html.escape(findings)}</p>"]
    if findings.empty:
        return [
            *parts,
            "<p class='pass'>None: no 5xx outside faults, no ungraceful answer "
            "during them, no endpoint slower than its limit.</p>",
        ]
    table = with_causes(findings, ACROSS_ROUTES)
    causes = by_cause(table)
    rows = []
    for cause in causes.itertuples(index=False):
        members = table[table["cause"] == cause.cause]
        if cause.rows > 1:
            rows += _cause_rows(cause, members)
            continue
        f = next(members.itertuples(index=False))
        rows.append(_tr(_finding_cells(f)))
        if log := _log_cell(f):
            rows.append(_span(log))
    head = "".join(f"<th>{h}</th>" for h in FINDINGS_HEAD)
    summary = f"<p>{len(table)} findings in {len(causes)} cause(s).</p>"
    table_html = f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    return [*parts, summary, table_html]


def render_report(
    run: Run,
    summary: pd.DataFrame,
    checks: pd.DataFrame | None = None,
    baseline: Run | None = None,
    changes: pd.DataFrame | None = None,
    title: str = "Load test report",
    experiment: dict[str, Any] | None = None,
    findings: pd.DataFrame | str | None = None,
    resources: pd.DataFrame | None = None,
) -> str:
    """The whole report as one HTML string.

    ``experiment`` is a resilience run's verdict.json: its verdict leads the report, and
    the caller passes no gate ``checks`` (see analysis.experiment_report). ``findings``
    is analysis.findings' table (or why there is none), shown right after the verdict.
    ``resources`` is the run's resource samples (analysis.resources), charted when any.
    """
    ts = timeseries(run.samples)
    figures = [
        ("Latency over time", charts.latency_over_time(ts, run.faults)),
        ("Throughput and errors", charts.throughput_over_time(ts, run.faults)),
    ]
    if bool(run.samples["has_intended"].any()):
        figures.append(
            ("Service vs corrected latency", charts.service_vs_corrected(ts, run.faults))
        )
    wide = series(resources) if resources is not None else pd.DataFrame()
    if not wide.empty:
        t0 = float(run.meta.get("t0", wide.index.min()))
        figures.append(("Resources over time", charts.resources_over_time(wide, run.faults, t0)))
    if baseline is not None:
        figures.append(
            (
                "Baseline vs current",
                charts.latency_cdfs(
                    baseline.samples["latency_ms"].to_numpy(), run.samples["latency_ms"].to_numpy()
                ),
            )
        )
    if changes is not None and not changes.empty:
        figures.append(("p95 change per endpoint", charts.change_with_ci(changes, "p95")))
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>Run: <code>{html.escape(run.source)}</code>; duration {run.duration_s:.1f} s; "
        f"commit <code>{html.escape(str(run.meta.get('git_commit')))}</code></p>",
    ]
    if experiment is not None:
        parts += experiment_sections(experiment)
    if findings is not None:
        parts += findings_section(findings)
    if checks is not None and not checks.empty:
        counts = tally(checks)
        verdict = "pass" if counts["fail"] == 0 else "fail"
        parts.append(f"<h2>Gate: <span class='{verdict}'>{verdict.upper()}</span></h2>")
        parts.append(f"<p>{html.escape(headline(counts))}</p>")
        parts.append(_table(checks_view(checks)))
    heading = "Summary" if experiment is None else "Summary of the whole run, faults included"
    parts += [f"<h2>{heading}</h2>", _table(summary_view(summary))]
    parts += workload_sections(run.meta)
    if not run.faults.empty:
        parts += ["<h2>Fault windows (seconds since start)</h2>", _table(_faults(run.faults))]
    for heading, fig in figures:
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        parts.append(f"<img alt='{html.escape(heading)}' src='{charts.to_data_uri(fig)}'>")
    if changes is not None and not changes.empty:
        parts += ["<h2>All changes vs baseline</h2>", _table(changes_view(changes))]
    parts.append("</body></html>")
    return "\n".join(parts)

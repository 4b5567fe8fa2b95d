"""The experiment's part of the HTML report: its verdict, phases, recoveries and audit.

A resilience experiment (`python -m experiments run`) writes `verdict.json` into its run
folder. Its verdict - not the whole-run performance gate, which would judge the outage
the experiment caused on purpose - is what the report states, with the same word the
CLI printed (`verdict_word` of the same `ok`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.charts import capacity_steps, to_data_uri
from analysis.load import InputError

VERDICT_FILE = "verdict.json"
# audit count -> (words in the report, the experiment's [audit] limit)
AUDIT_ROWS = (
    ("lost", "lost writes", "lost_writes"),
    ("duplicated", "duplicates", "duplicates"),
    ("inconsistent", "inconsistent copies", "inconsistent"),
    ("stuck", "stuck VODs", "stuck"),
)
FINDINGS_SHOWN = 20  # per kind; verdict.json holds them all
GATE_LEFT_OUT = (
    "The performance gate (config/gate.toml) is not applied to an experiment run: it "
    "judges steady load over the whole run, and this run disturbs the service on purpose. "
    "The experiment's hypothesis, phase by phase, is the verdict."
)


def verdict_word(ok: bool, hit_nothing: Sequence[str] = ()) -> str:
    """PASS, FAIL or FAULT HIT NOTHING: the one verdict the CLI prints and the report shows.

    A fault on a link that carried no traffic tested nothing, so it gets no verdict either way.
    """
    if hit_nothing:
        return "FAULT HIT NOTHING (no verdict): " + "; ".join(hit_nothing)
    return "PASS" if ok else "FAIL"


def read_experiment(run_dir: Path) -> dict[str, Any] | None:
    """The run's verdict.json, or None when the run is not an experiment run."""
    path = run_dir / VERDICT_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("verdict"), dict) or "ok" not in data:
        raise InputError(f"{path}: not a verdict written by python -m experiments run")
    return data


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def _status(ok: bool, yes: str = "ok", no: str = "FAILED") -> str:
    return f"<span class='{'pass' if ok else 'fail'}'>{yes if ok else no}</span>"


def _value(metric: str, value: float | None) -> str:
    if value is None:
        return "no requests"
    if metric in ("error_rate", "other_errors"):
        return _pct(value)
    if metric == "p95_ms":
        return _ms(value)
    return f"{value:.1f} req/s"


def _rows(cells: list[list[str]]) -> str:
    return "\n".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in cells)


def _table(head: list[str], cells: list[list[str]]) -> str:
    header = "".join(f"<th>{escape(h)}</th>" for h in head)
    return f"<table><thead><tr>{header}</tr></thead><tbody>\n{_rows(cells)}\n</tbody></table>"


def _check_cell(c: dict[str, Any]) -> str:
    """A check with its sample count; a skipped one says why, a relative one its interval."""
    head = f"{escape(c['metric'])} {escape(c['bound'])}: {_value(c['metric'], c['value'])} "
    n = f" n={c['samples']}" if c.get("samples") else ""
    detail = f" ({escape(c['detail'])})" if c.get("detail") else ""
    if c.get("skipped"):
        return f"{head}<b>SKIPPED</b>{n}: {escape(c['skipped'])}{detail}"
    return f"{head}{_status(bool(c['ok']))}{n}{detail}"


def phases_table(report: dict[str, Any]) -> str:
    """Each phase with its window (s since the load started), its figures and checks."""
    t0 = float(report.get("load_start") or 0.0)
    cells = []
    for phase in report["verdict"]["phases"]:
        s = phase["stats"]
        checks = "<br>".join(_check_cell(c) for c in phase["checks"])
        cells.append(
            [
                escape(phase["label"]),
                f"{phase['start'] - t0:.1f}-{phase['end'] - t0:.1f} s",
                str(s["requests"]),
                _pct(s["error_rate"]),
                _pct(s["other_errors"]),
                _ms(s["p95_ms"]),
                f"{s['throughput']:.1f}",
                checks or "(none)",
            ]
        )
    head = ["phase", "window", "requests", "errors", "other errors", "p95", "req/s", "checks"]
    return _table(head, cells)


def recovery_table(report: dict[str, Any]) -> str:
    t0 = float(report.get("load_start") or 0.0)
    cells = [
        [
            f"#{r['episode']}",
            escape(r["what"]),
            f"{r['fault_end'] - t0:.1f} s",
            "never" if r["seconds"] is None else f"{r['seconds']:.1f} s",
            f"{r['limit']:g} s",
            _status(bool(r["ok"])),
        ]
        for r in report["verdict"]["recoveries"]
    ]
    head = ["", "fault", "ended at", "recovered after", "allowed", "result"]
    return _table(head, cells)


def audit_part(audit: dict[str, Any] | None) -> list[str]:
    if audit is None:
        return ["<p>Not run (<code>--no-audit</code>, or <code>[audit] enabled = false</code>)."]
    counts, limits = audit["counts"], audit["limits"]
    cells = [
        [words, str(counts[kind]), str(limits[limit]), _status(counts[kind] <= limits[limit])]
        for kind, words, limit in AUDIT_ROWS
    ]
    checked = ", ".join(f"{escape(str(k))} {v}" for k, v in audit.get("checked", {}).items())
    parts = [
        f"<p>Result: {_status(bool(audit['ok']))}; checked: {checked or 'nothing'}</p>",
        _table(["finding", "found", "allowed", "result"], cells),
    ]
    findings = [
        f"<li>{kind}: VOD {escape(str(f['id']))}: {escape(str(f['problem']))}</li>"
        for kind, _, _ in AUDIT_ROWS
        for f in audit.get(kind, [])[:FINDINGS_SHOWN]
    ]
    if findings:
        parts.append("<ul>" + "".join(findings) + "</ul>")
    parts += [f"<p>note: {escape(str(n))}</p>" for n in audit.get("notes", [])]
    return parts


def capacity_part(capacity: dict[str, Any]) -> list[str]:
    """A step load's table, knee and chart (experiments.capacity_run)."""
    table = pd.DataFrame(capacity["steps"])
    k = capacity["knee"]
    cells = [
        [
            str(s["users"]),
            str(s["requests"]),
            f"{s['rps']:.1f}",
            _pct(s["error_rate"]),
            _ms(s["p95_ms"]),
            str(s["timed"]),
        ]
        for s in capacity["steps"]
    ]
    knee_text = (
        f"Knee: {k['users']} users, {k['rps']:.1f} requests/s sustained within the bounds"
        if k["users"] is not None
        else "No knee: not even the first step held"
    )
    chart = capacity_steps(table.astype({"p95_ms": float}), k["users"], None)
    return [
        "<h2>Capacity</h2>",
        f"<p>{escape(knee_text)}; {escape(k['why'])}.</p>",
        _table(["users", "requests", "req/s", "errors", "p95", "judged"], cells),
        f"<img alt='capacity' src='{to_data_uri(chart)}'>",
    ]


def experiment_sections(report: dict[str, Any]) -> list[str]:
    """HTML fragments, verdict first: what a reader of an experiment run needs."""
    word = verdict_word(bool(report["ok"]), report["verdict"].get("hit_nothing", []))
    verdict = report["verdict"]
    parts = [
        f"<h2>Experiment verdict: <span class='{word.lower()}'>{word}</span></h2>",
        f"<p>{escape(str(report.get('experiment', '')))}: {escape(str(report.get('title', '')))}"
        f" (<code>{escape(str(report.get('file', '')))}</code>), target "
        f"<code>{escape(str(report.get('target', '')))}</code>. The verdict holds when every "
        "phase meets the hypothesis, every fault is recovered from in time and the audit "
        f"finds nothing beyond its limits.</p>",
        "<h2>Phases</h2>",
        phases_table(report),
        "<h2>Recovery</h2>",
        recovery_table(report) if verdict["recoveries"] else "<p>No fault was injected.</p>",
    ]
    parts += [f"<p>note: {escape(str(n))}</p>" for n in verdict.get("notes", [])]
    if report.get("capacity"):
        parts += capacity_part(report["capacity"])
    parts += ["<h2>Data audit</h2>", *audit_part(report.get("audit"))]
    parts.append(f"<p><small>{escape(GATE_LEFT_OUT)}</small></p>")
    return parts

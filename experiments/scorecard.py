"""Words and pictures for verdicts: one run's table, and the catalogue's scorecard.

`render_report` turns a run's verdict.json into the table the CLI prints.
`run_catalogue` runs experiments one after another on one reference stack (started once:
~20 s saved per experiment) and `write_scorecard` writes `scorecard.md` (one row per
experiment: pass/fail, error rate and p95 during the fault, recovery time, lost writes)
and `scorecard.png` (matplotlib) from the runs' verdict.json files.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from experiments.capacity_run import render_capacity
from experiments.errors import ExperimentError
from experiments.experiment import REPO_ROOT
from experiments.experiment_file import load_experiment
from experiments.written_values import parse_duration


class ScorecardError(Exception):
    """A run folder has no readable verdict.json; the message names it."""


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _check_word(check: dict[str, Any]) -> str:
    """`p95_ms < 2500 ok (n=312)`; SKIPPED when it had too few samples to decide; `ok
    (undecided)` when it passed on its interval with its value beyond the bound."""
    word = "SKIPPED" if check.get("skipped") else "ok" if check["ok"] else "FAILED"
    word += " (undecided)" if check.get("undecided") else ""
    n = f" (n={check['samples']})" if "samples" in check and check.get("samples") else ""
    return f"{check['metric']} {check['bound']} {word}{n}"


def render_report(report: dict[str, Any]) -> str:
    """The verdict of one run as a plain-text table."""
    lines = [f"{report['experiment']}: {report['title']}", ""]
    header = f"{'phase':<44} {'requests':>8} {'errors':>8} {'p95 ms':>8} {'req/s':>7}  checks"
    lines += [header, "-" * len(header)]
    for phase in report["verdict"]["phases"]:
        s = phase["stats"]
        checks = ", ".join(_check_word(c) for c in phase["checks"])
        lines.append(
            f"{phase['label'][:44]:<44} {s['requests']:>8} {_pct(s['error_rate']):>8} "
            f"{_ms(s['p95_ms']):>8} {s['throughput']:>7.1f}  {checks or '(none)'}"
        )
        for c in phase["checks"]:
            said = "; ".join(x for x in (c.get("skipped"), c.get("detail")) if x)
            if said:
                lines.append(f"  {c['metric']} {c['bound']}: {said}")
        if phase.get("thin"):
            thin = ", ".join(f"{k} {v}" for k, v in phase["thin"].items())
            lines.append(f"  routes under the sample target in this phase: {thin}")
        if s.get("known_defects"):
            lines.append(
                f"  + {s['known_defects']} answers that are known defects of the app "
                "(route profile [defects]; not counted above)"
            )
        for d in phase.get("defects") or []:
            lines.append(
                f"  APP DEFECT under this fault: {d['answers']} answers on "
                f"{', '.join(d['routes'])}: {d['why']}"
            )
    if report.get("p95_routes"):
        lines.append(f"p95 ms of the routes {', '.join(report['p95_routes'])} only")
    for w in report.get("windows") or []:
        carried = w.get("bytes")
        if isinstance(carried, int):
            down = " (down: nothing passes, by design)" if w.get("toxic") == "down" else ""
            lines.append(
                f"{w['what']}: the {w['link']} link carried {carried} bytes in its window{down}"
            )
    lines.append("")
    for r in report["verdict"]["recoveries"]:
        seconds = "never" if r["seconds"] is None else f"{r['seconds']:.1f}s"
        verdict = "ok" if r["ok"] else "FAILED"
        lines.append(
            f"recovery #{r['episode']}: {seconds} (target {r['limit']:g}s) {verdict}: {r['what']}"
        )
    if report.get("capacity"):
        lines += render_capacity(report["capacity"])
    for note in report["verdict"]["notes"]:
        lines.append(f"note: {note}")
    for why in report["verdict"].get("hit_nothing", []):
        lines.append(f"FAULT HIT NOTHING (no verdict): {why}")
    links = report.get("links")
    if isinstance(links, dict):
        carried = ", ".join(f"{k} {sum(v.values())}" for k, v in sorted(links.items()))
        lines.append(f"bytes per link over the load: {carried}")
    coverage = report.get("coverage") or {}
    for line in coverage.get("skipped", []):
        lines.append(f"skipped: {line}")
    for line in coverage.get("notes", []):
        lines.append(f"workload note: {line}")
    audit = report.get("audit")
    if audit is None:
        lines.append(f"audit: {report.get('audit_note') or 'not run'}")
    else:
        c, lim = audit["counts"], audit["limits"]
        lines.append(
            f"audit: lost {c['lost']} (max {lim['lost_writes']}), duplicated "
            f"{c['duplicated']} (max {lim['duplicates']}), inconsistent {c['inconsistent']} "
            f"(max {lim['inconsistent']}), stuck {c['stuck']} (max {lim['stuck']}) "
            f"{'ok' if audit['ok'] else 'FAILED'}; checked {audit['checked']}"
        )
        for kind in ("lost", "duplicated", "inconsistent", "stuck"):
            for f in audit[kind][:10]:
                lines.append(f"  {kind}: vod {f['id']}: {f['problem']}")
            if len(audit[kind]) > 10:
                lines.append(f"  {kind}: ... and {len(audit[kind]) - 10} more (verdict.json)")
        for note in audit["notes"]:
            lines.append(f"  note: {note}")
    return "\n".join(lines)


def summarise(report: dict[str, Any]) -> dict[str, Any]:
    """One scorecard row from a verdict.json."""
    during = [p for p in report["verdict"]["phases"] if p["phase"] == "during"]
    errors = [p["stats"]["error_rate"] for p in during if p["stats"]["error_rate"] is not None]
    p95s = [p["stats"]["p95_ms"] for p in during if p["stats"]["p95_ms"] is not None]
    recoveries = report["verdict"]["recoveries"]
    never = any(r["seconds"] is None for r in recoveries)
    seconds = [r["seconds"] for r in recoveries if r["seconds"] is not None]
    audit = report.get("audit")
    return {
        "experiment": report["experiment"],
        "ok": bool(report.get("ok")),
        "hit_nothing": bool(report["verdict"].get("hit_nothing")),
        "error_rate_during": max(errors) if errors else None,
        "p95_during_ms": max(p95s) if p95s else None,
        "recovery_s": None if never or not seconds else max(seconds),
        "recovered": not never,
        "lost": None if audit is None else audit["counts"]["lost"],
        "duplicated": None if audit is None else audit["counts"]["duplicated"],
        "inconsistent": None if audit is None else audit["counts"]["inconsistent"],
        "stuck": None if audit is None else audit["counts"]["stuck"],
        "run_dir": report["run_dir"],
    }


def read_report(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "verdict.json"
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise ScorecardError(f"{path}: cannot read ({exc.strerror})") from None
    except ValueError as exc:
        raise ScorecardError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or "verdict" not in data:
        raise ScorecardError(f"{path}: not a verdict written by python -m experiments run")
    return data


def markdown(rows: list[dict[str, Any]], errors: dict[str, str]) -> str:
    passed = sum(r["ok"] for r in rows)
    out = [
        "# Resilience scorecard",
        "",
        f"{passed} of {len(rows) + len(errors)} experiments passed "
        f"({dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC).",
        "",
        "| experiment | verdict | error rate during | p95 during (ms) | recovery | lost writes "
        "| duplicated | inconsistent | stuck |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        recovery = "never" if not r["recovered"] else f"{r['recovery_s'] or 0:.1f}s"
        out.append(
            f"| {r['experiment']} | {_word(r)} "
            f"| {_pct(r['error_rate_during'])} | {_ms(r['p95_during_ms'])} | {recovery} "
            f"| {_na(r['lost'])} | {_na(r['duplicated'])} | {_na(r['inconsistent'])} "
            f"| {_na(r['stuck'])} |"
        )
    for name, error in errors.items():
        out.append(f"| {name} | **ERROR** | {error.splitlines()[0][:120]} | | | | | | |")
    out.append("")
    return "\n".join(out)


def _word(row: dict[str, Any]) -> str:
    if row.get("hit_nothing"):
        return "**FAULT HIT NOTHING**"
    return "PASS" if row["ok"] else "**FAIL**"


def _na(value: Any) -> str:
    return "-" if value is None else str(value)


def chart(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["experiment"] for r in rows]
    colours = ["tab:green" if r["ok"] else "tab:red" for r in rows]
    height = max(3.0, 0.32 * len(rows) + 1.5)
    fig, axes = plt.subplots(1, 3, figsize=(15, height), sharey=True)
    panels = [
        ("error rate during fault (%)", [100 * (r["error_rate_during"] or 0) for r in rows]),
        ("p95 during fault (ms)", [r["p95_during_ms"] or 0 for r in rows]),
        (
            "recovery time (s; hatched = never)",
            [r["recovery_s"] or 0 if r["recovered"] else math.nan for r in rows],
        ),
    ]
    for ax, (title, values) in zip(axes, panels, strict=True):
        shown = [0 if math.isnan(v) else v for v in values]
        bars = ax.barh(names, shown, color=colours)
        for bar, v in zip(bars, values, strict=True):
            if math.isnan(v):
                bar.set_hatch("//")
        ax.set_title(title, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    axes[0].invert_yaxis()
    fig.suptitle("Resilience scorecard (green pass, red fail)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_scorecard(
    run_dirs: list[Path], out: Path, errors: dict[str, str] | None = None
) -> list[Path]:
    rows = [summarise(read_report(d)) for d in run_dirs]
    out.mkdir(parents=True, exist_ok=True)
    md = out / "scorecard.md"
    md.write_text(markdown(rows, errors or {}))
    (out / "scorecard.json").write_text(json.dumps(rows, indent=2) + "\n")
    paths = [md, out / "scorecard.json"]
    if rows:
        chart(rows, out / "scorecard.png")
        paths.append(out / "scorecard.png")
    return paths


def run_catalogue(files: list[Path], out: Path | None, budget: str) -> int:
    """Run every experiment on one reference stack; write the scorecard; 0 if all passed."""
    from experiments.errors import RunError
    from experiments.runner import execute
    from testbed.throwaway_stack import StackStartError, reference_stack

    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = out or REPO_ROOT / "runs" / f"resilience-{stamp}"
    try:
        experiments = [load_experiment(f) for f in files]
        limit = parse_duration(budget)
    except (ExperimentError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    run_dirs: list[Path] = []
    errors: dict[str, str] = {}
    started = time.monotonic()
    try:
        with reference_stack() as target:
            for i, exp in enumerate(experiments, 1):
                left = limit - (time.monotonic() - started)
                if left < exp.load.duration + 30:
                    errors[exp.name] = f"not run: the {budget} budget is spent"
                    continue
                print(f"\n== [{i}/{len(experiments)}] {exp.name}", file=sys.stderr)
                run_dir = out / exp.name
                try:
                    outcome = execute(exp, run_dir, target)
                except RunError as exc:
                    print(f"error: {exc}", file=sys.stderr)
                    errors[exp.name] = str(exc)
                    continue
                print(render_report(outcome.report), file=sys.stderr)
                run_dirs.append(run_dir)
    except (RunError, StackStartError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    paths = write_scorecard(run_dirs, out, errors)
    print((out / "scorecard.md").read_text())
    for path in paths:
        print(f"wrote {path}")
    rows = json.loads((out / "scorecard.json").read_text())
    return 0 if rows and all(r["ok"] for r in rows) and not errors else 1

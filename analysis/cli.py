"""``python -m analysis``: summary, baselines, comparison, the CI gate, reports, history,
findings.

Exit codes: 0 success / gate passed, 1 gate found a regression (``findings``: only with
``--fail-on-findings``, when there are any), 2 usage error or missing/corrupt input (one
line on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from analysis import charts
from analysis.baseline import (
    DEFAULT_ROOT,
    check_same_routes,
    load_baseline,
    routes_of,
    save_baseline,
)
from analysis.compare import DEFAULT_METRICS, compare_runs
from analysis.config import GateConfig, check_paired, load_config
from analysis.display import history_view
from analysis.experiment_report import read_experiment
from analysis.findings import to_records, to_text
from analysis.findings_run import run_findings
from analysis.gate import evaluate, gate_metrics, passed
from analysis.history import HISTORY_METRICS, change_points, collect
from analysis.html import render_report
from analysis.junit import gate_junit
from analysis.load import InputError, Run, load_run
from analysis.markdown import changes_table, gate_markdown, pair_markdown, summary_table
from analysis.paired import (
    BASELINE,
    CANDIDATE,
    candidate_run,
    pair_table,
    paired_checks,
    side_run,
)
from analysis.resources import read_resources
from analysis.stats import summarise
from testbed.stack_settings import REGRESSIONS
from workload.inbox import worker_lines

DEFAULT_CONFIG = Path("config/gate.toml")
STACK_CONFIG = Path(__file__).resolve().parents[1] / "config" / "stack.toml"


def _baseline(arg: str, root: Path) -> Run:
    """A stored baseline name, or a run folder used directly as the baseline."""
    path = Path(arg)
    if path.is_dir() and any(path.glob("requests-*.parquet")):
        return load_run(path)
    if os.sep in arg or arg.startswith("."):
        raise InputError(f"{arg}: not a run folder with requests-*.parquet files")
    return load_baseline(arg, root)


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    except OSError as exc:
        raise InputError(f"{path}: cannot write ({exc.strerror})") from exc


def _changes(base: Run | None, run: Run, config: GateConfig) -> pd.DataFrame | None:
    """One comparison with every metric the report shows and the gate needs."""
    if base is None:
        return None
    metrics = tuple(dict.fromkeys((*DEFAULT_METRICS, *gate_metrics(config))))
    return compare_runs(base, run, config.settings, metrics)


def cmd_summary(args: argparse.Namespace) -> int:
    run = load_run(args.run)
    print(f"## {args.run}\n")
    for line in worker_lines(run.meta.get("workers") or {}):
        if "LOST" in line:  # a distributed run that is missing part of a worker's data
            print(f"{line}\n")
    print(summary_table(summarise(run.samples, run.duration_s)))
    return 0


def cmd_baseline_save(args: argparse.Namespace) -> int:
    run = load_run(args.run)
    cap = args.cap or load_config(args.config).settings.baseline_cap
    folder = save_baseline(run, args.name, args.root, cap=cap)
    size = sum(p.stat().st_size for p in folder.iterdir())
    print(f"saved baseline {args.name!r} from {args.run} to {folder} ({size / 1024:.0f} KiB)")
    return 0


def cmd_baseline_record(args: argparse.Namespace) -> int:
    """Record the gate's own load on a freshly started stack and store it as a baseline."""
    try:
        config, run_dir = record_gate_run(args)
    except KeyboardInterrupt:
        print("interrupted: the stack was stopped, nothing stored", file=sys.stderr)
        return 130
    name = args.name or config.run.baseline
    run = load_run(run_dir)
    folder = save_baseline(run, name, args.root, cap=config.settings.baseline_cap)
    print(f"saved baseline {name!r} from {run_dir} to {folder}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    base = _baseline(args.baseline, args.root)
    run = load_run(args.run)
    changes = compare_runs(base, run, config.settings)
    st = config.settings
    print(f"## Comparison: {args.run} against baseline `{args.baseline}`\n")
    print(changes_table(changes))
    print(
        f"\nchange [CI]: {st.confidence:.0%} block-bootstrap interval; n/a where there is "
        f"too little data (note says which minimum of {args.config} was not met)"
    )
    return 0


def _publish(md: str, checks: pd.DataFrame, junit: Path | None) -> None:
    print(md)
    if step := os.environ.get("GITHUB_STEP_SUMMARY"):
        with open(step, "a", encoding="utf-8") as fh:
            fh.write(md + "\n")
    if junit:
        _write(junit, gate_junit(checks))


def cmd_gate_paired(args: argparse.Namespace) -> int:
    """--against: OLD and NEW measured in turn. For the reference stack OLD is a ref of this
    repository; with --app NAME (a hosted app) OLD is a ref of --app-src's repository or a
    second checkout, and the two versions of the app are compared."""
    from analysis.paired_run import run_paired  # starts stacks: only this command needs it

    app, app_src = args.app, args.app_src or os.environ.get("ARCHIVIST_SRC")
    if app == "reference":
        app = None
    if app is None and args.app_src:
        args.usage_error("--app-src with --against needs --app NAME (the app both versions are)")
    if app is not None and not app_src:
        args.usage_error(f"--app {app} --against OLD needs --app-src NEW (or $ARCHIVIST_SRC)")
    if app is not None and args.candidate_regression:
        args.usage_error("--candidate-regression is a reference-stack regression: not with --app")
    config = load_config(args.config, app)

    # A shell starts background jobs (and some CI runners their steps) with SIGINT ignored,
    # and Python then keeps it ignored: Ctrl-C must still stop both stacks and the export.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    paired = config.paired
    if args.slices is not None:
        paired = dataclasses.replace(paired, slices=args.slices)
    if args.slice_seconds is not None:
        paired = dataclasses.replace(paired, slice_s=args.slice_seconds)
    check_paired(paired, "--slices/--slice-seconds")
    config = dataclasses.replace(config, paired=paired)
    try:
        if app is None:
            slices = run_paired(args.against, paired, args.candidate_regression)
        else:
            from analysis.paired_apps import run_paired_apps  # hosts two checkouts

            slices = run_paired_apps(app, Path(app_src or ""), args.against, paired)
    except KeyboardInterrupt:
        print("interrupted: both stacks stopped, OLD's export removed", file=sys.stderr)
        return 130
    window = paired.slice_s - paired.warmup_s
    checks = paired_checks(slices, window, config)
    ok = passed(checks)
    cand = candidate_run(slices, window)
    label = f"{args.against} (paired, {paired.slices // 2} pairs)"
    title = "Performance gate: this tree" + (
        f" with regression {args.candidate_regression}" if args.candidate_regression else ""
    )
    if app is not None:
        title = f"Performance gate: {app} from {app_src} (checks of [apps.{app}])"
    md = gate_markdown(title, summarise(cand.samples, cand.duration_s), checks, ok, label)
    md += "\n" + pair_markdown(pair_table(slices, window, paired), CANDIDATE)
    _publish(md, checks, args.junit)
    if args.report:  # the candidate's slices, the baseline's beside them
        base = side_run(slices, window, BASELINE)
        html = render_report(
            cand, summarise(cand.samples, cand.duration_s), checks, base, title=f"{title} ({label})"
        )
        _write(args.report, html)
    return 0 if ok else 1


def record_gate_run(args: argparse.Namespace) -> tuple[GateConfig, Path]:
    """--start-stack: the gate's own load ([run] of --config, for the app the stack hosts)
    into --run-dir; returns the config as it applies to that app."""
    from analysis.gate_load import chosen_target, record_run  # starts a stack

    # A shell starts background jobs with SIGINT ignored: Ctrl-C must still stop the stack.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    target = chosen_target(args.app, args.app_src, args.stack_config)
    config = load_config(args.config, target.app)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    run_dir = args.run_dir or Path("runs") / f"gate-{stamp}"
    record_run(config.run, target, run_dir, args.stack_config)
    return config, run_dir


def cmd_gate(args: argparse.Namespace) -> int:
    if args.against is not None:
        if args.run is not None or args.baseline or args.start_stack:
            args.usage_error("--against REF takes no RUN, --baseline or --start-stack")
        return cmd_gate_paired(args)
    stack_flags = [f for f in ("app", "app_src", "run_dir") if getattr(args, f) is not None]
    if args.start_stack and args.run is not None:
        args.usage_error("--start-stack records its own run: give --run-dir DIR, not RUN")
    if not args.start_stack and stack_flags:
        args.usage_error(f"--{stack_flags[0].replace('_', '-')} goes with --start-stack")
    if not args.start_stack and args.run is None:
        args.usage_error(
            "a RUN folder is needed, --start-stack to record one, or --against REF for a paired run"
        )
    if args.start_stack:
        try:
            config, args.run = record_gate_run(args)
        except KeyboardInterrupt:
            print("interrupted: the stack was stopped", file=sys.stderr)
            return 130
        args.baseline = args.baseline or config.run.baseline
        run = load_run(args.run)
    else:
        from analysis.gate_load import app_for_routes

        run = load_run(args.run)
        config = load_config(args.config, app_for_routes(routes_of(run.meta)))
    base = _baseline(args.baseline, args.root) if args.baseline else None
    if base is not None:
        check_same_routes(base, run)
    changes = _changes(base, run, config) if args.report else None
    checks = evaluate(run, config, base, changes)
    ok = passed(checks)
    summary = summarise(run.samples, run.duration_s)
    title = f"Performance gate: {args.run}"
    title += f" (checks of [apps.{config.app}])" if config.app else ""
    md = gate_markdown(title, summary, checks, ok, args.baseline)
    _publish(md, checks, args.junit)
    if args.report:
        _write(args.report, render_report(run, summary, checks, base, changes))
    return 0 if ok else 1


def cmd_report(args: argparse.Namespace) -> int:
    from analysis.gate_load import app_for_routes

    run = load_run(args.run)
    config = load_config(args.config, app_for_routes(routes_of(run.meta)))
    base = _baseline(args.baseline, args.root) if args.baseline else None
    changes = _changes(base, run, config)
    experiment = read_experiment(Path(args.run))
    # An experiment run has its own verdict; the whole-run gate would judge the outage.
    checks = evaluate(run, config, base, changes) if experiment is None else None
    out = args.out or Path(args.run) / "report.html"
    title = "Load test report"
    if experiment is not None:
        title = f"Resilience experiment {experiment.get('experiment', '')}"
    summary = summarise(run.samples, run.duration_s)
    findings: pd.DataFrame | str
    try:
        findings = run_findings(Path(args.run), args.app_log, args.routes).table
    except InputError as exc:  # the rest of the report still stands
        findings = str(exc)
    try:
        resources = read_resources(Path(args.run))
    except InputError as exc:  # the charts are left out; the rest of the report stands
        print(f"warning: {exc}", file=sys.stderr)
        resources = None
    html = render_report(
        run, summary, checks, base, changes, title, experiment, findings, resources
    )
    _write(out, html)
    print(f"wrote {out} ({len(html) / 1024:.0f} KiB)")
    return 0


def cmd_findings(args: argparse.Namespace) -> int:
    """Like a linter: findings are reported and exit 0, unless --fail-on-findings asks for 1
    (as pytest fails a session when a test fails); a run that cannot be read is 2."""
    for path in args.app_log:
        if not path.is_file():
            raise InputError(f"--app-log {path}: no such file")
    result = run_findings(Path(args.run), args.app_log, args.routes)
    if args.json:
        print(json.dumps(to_records(result.table), indent=2))
    else:
        logs = ", ".join(str(p) for p in result.logs) or "none"
        print(f"{args.run}: profile {result.rules.profile}; app logs: {logs}")
        print(to_text(result.table))
    return 1 if args.fail_on_findings and not result.table.empty else 0


def cmd_history(args: argparse.Namespace) -> int:
    frame, skipped = collect(args.runs)
    for line in skipped:
        print(f"skipped: {line}", file=sys.stderr)
    if frame.empty:
        raise InputError(f"{args.runs}: no readable runs")
    cps = change_points(frame[args.metric].to_numpy())
    print(history_view(frame, cps).to_string(index=False))
    print(f"change points in {args.metric}: " + (", ".join(frame["run"][cps]) or "none"))
    if args.chart:
        fig = charts.trend(frame, args.metric, cps)
        args.chart.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.chart, dpi=80)
        print(f"wrote {args.chart}")
    return 0


def add_app_log(p: argparse.ArgumentParser, help: str) -> None:
    """``--app-log FILE`` (repeatable), the same for every command that reads findings."""
    p.add_argument("--app-log", type=Path, action="append", default=[], metavar="FILE", help=help)


def stack_options(p: argparse.ArgumentParser) -> None:
    """Where the gate's own load runs (``gate --start-stack``, ``baseline record``)."""
    p.add_argument(
        "--app",
        help="the Archivist the stack hosts: reference, or a config/apps name such as "
        "archivist-flask (default: app of --stack-config)",
    )
    p.add_argument(
        "--app-src",
        help="that app's checkout (default: $ARCHIVIST_SRC, then app_src of --stack-config)",
    )
    p.add_argument("--run-dir", type=Path, help="where the run goes (default runs/gate-<UTC>)")
    p.add_argument(
        "--stack-config",
        type=Path,
        default=STACK_CONFIG,
        help="stack TOML: ports, app, app_src (default config/stack.toml)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m analysis",
        description="Exact load-test results: summaries, baselines, bootstrap comparison, "
        "the CI performance gate and HTML reports.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="gate thresholds")
        p.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="baselines folder")

    p = sub.add_parser("summary", help="exact percentiles, throughput and errors of a run")
    p.add_argument("run", type=Path, help="run folder (runs/...)")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("baseline", help="manage stored baselines")
    bsub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    b = bsub.add_parser("save", help="store a compact copy of RUN as baseline NAME")
    b.add_argument("run", type=Path)
    b.add_argument("--name", required=True, help="baseline name, e.g. main")
    b.add_argument("--cap", type=int, default=0, help="max samples per name (default: config)")
    common(b)
    b.set_defaults(func=cmd_baseline_save)

    b = bsub.add_parser(
        "record",
        help="start the stack, run the gate's load ([run] of --config) and store it",
        description="Start the stack on free ports (hosting --app, else config/stack.toml's "
        "app), run the gate's own load on it ([run] of --config, [apps.APP.run] for a real "
        "app), stop the stack and store the run as baseline NAME (default: [run] baseline).",
    )
    b.add_argument("--name", help="baseline name (default: the config's [run] baseline)")
    b.set_defaults(func=cmd_baseline_record)
    common(b)
    stack_options(b)

    p = sub.add_parser("compare", help="change of every metric with bootstrap CIs")
    p.add_argument("baseline", help="baseline name or run folder")
    p.add_argument("run", type=Path)
    common(p)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser(
        "gate",
        help="CI gate: exit 0 pass, 1 regression, 2 bad input",
        description="Gate RUN against a stored baseline, or (--against REF) run REF's stack "
        "and this tree's side by side in alternating slices and compare them pair by pair, "
        "so a busy machine slows both sides alike. Paired settings: [paired] of --config.",
    )
    p.add_argument("run", type=Path, nargs="?", help="run folder (not with --against)")
    p.add_argument("--baseline", help="baseline name or run folder (relative checks)")
    p.add_argument(
        "--against",
        metavar="REF",
        help="paired mode: git ref of the baseline code (this repository's; with --app NAME "
        "and --app-src NEW: a ref of NEW's repository or the path of OLD's checkout)",
    )
    p.add_argument("--slices", type=int, metavar="N", help="paired: slices, even (2 per pair)")
    p.add_argument("--slice-seconds", type=float, metavar="S", help="paired: seconds per slice")
    p.add_argument(
        "--candidate-regression",
        choices=REGRESSIONS,
        help="paired: start this tree's API with a deliberate regression, to prove the gate "
        "catches it",
    )
    p.add_argument(
        "--start-stack",
        action="store_true",
        help="record RUN first: start the stack, run the gate's load ([run] of --config), "
        "stop the stack; the baseline defaults to the config's (per app: [apps.APP])",
    )
    stack_options(p)
    p.add_argument("--junit", type=Path, help="write JUnit XML here")
    p.add_argument("--report", type=Path, help="write the HTML report here")
    common(p)
    p.set_defaults(func=cmd_gate, usage_error=p.error)

    p = sub.add_parser("report", help="self-contained HTML report with charts")
    p.add_argument("run", type=Path)
    p.add_argument("--baseline", help="baseline name or run folder")
    p.add_argument("--out", type=Path, help="output file (default RUN/report.html)")
    add_app_log(p, "the application's log, for the findings (repeatable)")
    p.add_argument("--routes", help="route profile of the findings (default: the run's)")
    common(p)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser(
        "findings",
        help="the defects a run shows: 5xx, ungraceful outages, slow endpoints",
        description="One row per defect: endpoint, status, count, share, first seen, fault "
        "window, error shape and the app log line of that route (its handler's, from the "
        "profile's [findings.handlers], or one naming its path), else that none matched. "
        "Printed one line per cause (kind, fault, status, shape, log signature) with its "
        "routes, then a line per route; --json: one record per route with its cause. "
        "Rules: the [findings] section of the route profile (config/routes/*.toml). Exit 0 "
        "(findings are reported), 1 with --fail-on-findings when there are any, 2 "
        "unreadable input.",
    )
    p.add_argument("run", type=Path, help="run folder (runs/...)")
    add_app_log(p, "the application's log (repeatable); RUN/app-logs/*.log are always read")
    p.add_argument("--routes", help="route profile (default: the one the run used)")
    p.add_argument("--json", action="store_true", help="print the findings as JSON")
    p.add_argument(
        "--fail-on-findings", action="store_true", help="exit 1 when there is any finding"
    )
    p.set_defaults(func=cmd_findings)

    p = sub.add_parser("history", help="trend and change points over stored runs")
    p.add_argument("--runs", type=Path, default=Path("runs"), help="folder of run folders")
    p.add_argument("--metric", choices=HISTORY_METRICS, default="p95")
    p.add_argument("--chart", type=Path, help="write the trend chart (PNG) here")
    p.set_defaults(func=cmd_history)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

"""`python -m experiments`: run resilience experiments and look after what they inject.

    python -m experiments run NAME|FILE [--host URL] [--run-dir DIR] [--no-audit] [--report]
                    [--routes PROFILE] [--app-log FILE ...] [--app NAME [--app-src PATH]]
                    [--stack-config PATH]
                    NAME: config/experiments/NAME.toml; --app: the stack hosts that
                    real Archivist (config/apps/NAME.toml) from its checkout
                    (--app-src, default $ARCHIVIST_SRC) and the run uses its routes;
                    --stack-config: the stack TOML (default config/stack.toml), whose
                    `app` and `app_src` count when neither --app nor [stack] names one
                    (the choice: testbed.app_choice)
    python -m experiments list                 the catalogue: one line per experiment
    python -m experiments check [FILE|DIR ...] validate experiment files (all by default)
    python -m experiments cleanup [--all]      remove faults left by killed runs
    python -m experiments resilience [--only GLOB] [--out DIR]   the catalogue, its scorecard
    python -m experiments scorecard RUN_DIR ... [--out DIR]      a scorecard of finished runs
    python -m experiments audit RUN_DIR --database-url URL [--redis-url URL]
                    [--cablecast-url URL] [--routes PROFILE]
                    was anything the service acknowledged lost?

`python -m faults ...` (the old name, faults/__main__.py) runs the same commands.

Exit codes: 0 every check held, 1 a check failed or a fault hit nothing (its link carried
no byte: no verdict), 2 the experiment could not be run (bad file, stack did not start, a
silent workload, ...), 130 interrupted (faults removed). `audit`: 0 every
acknowledged write was kept, 1 findings, 2 unusable input (no ledger, store unreachable).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import Any

from experiments.errors import ExperimentError
from experiments.experiment import REPO_ROOT, Experiment
from experiments.experiment_file import app_routes, load_experiment
from testbed.app_choice import AppChoice, AppChoiceError, choose_app

PROG = "python -m experiments"
CATALOGUE = REPO_ROOT / "config" / "experiments"


def _terminate(signum: int, frame: FrameType | None) -> None:
    """SIGTERM unwinds like Ctrl-C, so every `finally` (rollback, stack stop) runs."""
    raise KeyboardInterrupt


def catalogue_files(only: str | None = None) -> list[Path]:
    files = sorted(CATALOGUE.glob("*.toml"))
    if only:
        files = [f for f in files if f.match(only) or f.stem == only]
    return files


def experiment_file(given: str) -> Path:
    """An experiment file, or the name of one in the catalogue (`postgres-down`).

    A name, or a path into the catalogue, that is not there is refused with the names
    that are, since that is what a mistyped `make experiment NAME=...` needs to see.
    """
    path = Path(given)
    if path.exists():  # a file, or a folder that load_experiment refuses by name
        return path
    bare_name = path.parent == Path(".") and path.suffix in ("", ".toml")
    if bare_name or path.resolve().parent == CATALOGUE.resolve():
        candidate = CATALOGUE / f"{path.stem}.toml"
        if candidate.is_file():
            return candidate
        known = ", ".join(sorted(f.stem for f in catalogue_files()))
        raise ExperimentError(f"unknown experiment {path.stem}; known: {known}")
    return path  # load_experiment says why it cannot be read


def cmd_run(args: argparse.Namespace) -> int:
    from analysis.experiment_report import verdict_word
    from experiments.errors import RunError
    from experiments.runner import default_run_dir, execute, external_target
    from experiments.scorecard import render_report
    from testbed.throwaway_stack import StackStartError, reference_stack

    experiment = load_experiment(experiment_file(args.experiment))
    if args.host and (args.app or experiment.stack.app):
        app = args.app or experiment.stack.app
        raise ExperimentError(f"--host and --app {app}: give one target, not both")
    if args.host and args.stack_config:
        raise ExperimentError("--host and --stack-config: give one target, not both")
    stack_config = stack_config_file(args.stack_config)
    choice = None if args.host else chosen_app(experiment, args.app, args.app_src, stack_config)
    if args.routes:
        experiment = with_routes(experiment, args.routes)
    elif choice is not None and experiment.load.routes == "contract":
        experiment = with_routes(experiment, app_routes(choice.app))  # the app's own workload
    run_dir = Path(args.run_dir) if args.run_dir else default_run_dir(experiment)
    for log in args.app_log:
        if not log.is_file():
            print(f"error: --app-log {log}: no such file", file=sys.stderr)
            return 2
    try:
        if choice is None:  # --host
            target = external_target(args.host, tuple(args.app_log))
            outcome = execute(experiment, run_dir, target, audit=args.audit)
        else:
            app, app_src = choice.app, choice.app_src
            what = f"hosting {app} from {app_src}" if app_src else f"as {stack_config} says"
            print(f"starting the stack ({what}) on free ports ...", file=sys.stderr)
            with reference_stack(app, app_src, stack_config) as stack:
                target = replace(stack, app_logs=(*stack.app_logs, *args.app_log))
                outcome = execute(experiment, run_dir, target, audit=args.audit)
    except (RunError, StackStartError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(render_report(outcome.report))
    print(findings_text(outcome.report))
    if args.report:
        html_report(run_dir)
    word = verdict_word(outcome.ok, outcome.verdict.hit_nothing)  # as the HTML report shows
    print(f"verdict: {word}; details in {run_dir / 'verdict.json'}")
    return 0 if outcome.ok else 1


def stack_config_file(given: Path | None) -> Path:
    """The stack TOML of the started stack: --stack-config, else config/stack.toml."""
    from testbed.stack_settings import DEFAULT_CONFIG

    if given is None:
        return DEFAULT_CONFIG
    if not given.is_file():
        raise ExperimentError(f"--stack-config {given}: no such file")
    return given


def chosen_app(
    experiment: Experiment, app: str | None, app_src: str | None, stack_config: Path
) -> AppChoice:
    """The app the stack hosts and its checkout (testbed.app_choice: --app/--app-src, then
    the experiment's [stack], then $ARCHIVIST_SRC, then the stack TOML)."""
    try:
        return choose_app(app, app_src, stack_config, experiment.stack)
    except AppChoiceError as exc:
        raise ExperimentError(str(exc)) from None


def with_routes(experiment: Experiment, routes: str) -> Experiment:
    """The experiment run with another route/auth profile (--routes), checked first."""
    from experiments.experiment_file import check_routes

    def fail(where: str, message: str) -> ExperimentError:
        return ExperimentError(f"--routes {routes!r}: {message}")

    load = dataclasses.replace(experiment.load, routes=check_routes(routes, fail))
    from workload.routes import Profile

    unknown = sorted(set(experiment.hypothesis.p95_routes) - set(Profile.load(routes).routes))
    if unknown:
        raise fail("", f"hypothesis.p95_routes {', '.join(unknown)} are not routes of it")
    return dataclasses.replace(experiment, load=load)


def findings_text(report: dict[str, Any]) -> str:
    """The run's findings as the end of the run prints them (the verdict does not count them)."""
    import pandas as pd

    from analysis.findings import COLUMNS, to_text

    if report.get("findings") is None:
        return f"findings: not computed ({report.get('findings_error')})"
    return to_text(pd.DataFrame(report["findings"], columns=list(COLUMNS)))


def html_report(run_dir: Path) -> None:
    """The analysis package's HTML report of the run (fault windows included), if it builds."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "analysis", "report", str(run_dir)],
            capture_output=True,
            text=True,
            timeout=300,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        print(f"warning: no HTML report: {exc}", file=sys.stderr)
        return
    if done.returncode != 0:
        print(f"warning: no HTML report: {done.stderr.strip()[-500:]}", file=sys.stderr)
        return
    print(f"HTML report: {run_dir / 'report.html'}")


def cmd_list(args: argparse.Namespace) -> int:
    for path in catalogue_files():
        try:
            exp = load_experiment(path)
        except ExperimentError as exc:
            print(f"{path.stem:<28} INVALID: {exc}")
            continue
        faults = "; ".join(f"{f.describe()} @{f.at:g}s+{f.duration:g}s" for f in exp.faults)
        print(f"{exp.name:<28} {exp.load.duration:4.0f}s  {exp.title}  [{faults}]")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    files: list[Path] = []
    for given in map(Path, args.files):
        if not given.is_dir():
            files.append(given)
            continue
        inside = sorted(given.glob("*.toml"))  # a folder: every experiment file in it
        if not inside:
            print(f"error: {given} is a folder without .toml experiment files", file=sys.stderr)
            return 2
        files += inside
    files = files or catalogue_files()
    bad = 0
    for path in files:
        try:
            load_experiment(path)
        except ExperimentError as exc:
            print(f"error: {exc}", file=sys.stderr)
            bad += 1
    print(f"{len(files) - bad} of {len(files)} experiment files are valid")
    return 1 if bad else 0


def cmd_cleanup(args: argparse.Namespace) -> int:
    from experiments.timeline import cleanup

    lines = cleanup(include_live=args.all)
    for line in lines:
        print(line)
    if not lines:
        print("nothing left behind")
    return 0


def cmd_resilience(args: argparse.Namespace) -> int:
    from experiments.scorecard import run_catalogue

    files = catalogue_files(args.only)
    files = [f for f in files if f.stem != "demo" or args.only]
    hosted = [f for f in files if hosts_an_app(f)]
    if hosted:  # the catalogue runs on one reference stack; these need their own
        names = ", ".join(f.stem for f in hosted)
        print(
            "not run here (they host a real app; run each: python -m experiments run NAME): "
            + names,
            file=sys.stderr,
        )
        files = [f for f in files if f not in hosted]
    if not files:
        print(f"error: no experiment in {CATALOGUE} matches {args.only!r}", file=sys.stderr)
        return 2
    return run_catalogue(files, Path(args.out) if args.out else None, args.budget)


def hosts_an_app(path: Path) -> bool:
    """Whether an experiment file's [stack] hosts a real app (an invalid file: no)."""
    from testbed.hosted.spec import REFERENCE

    try:
        app = load_experiment(path).stack.app
    except ExperimentError:
        return False
    return app is not None and app != REFERENCE


def cmd_scorecard(args: argparse.Namespace) -> int:
    from experiments.scorecard import ScorecardError, write_scorecard

    try:
        paths = write_scorecard([Path(d) for d in args.run_dirs], Path(args.out))
    except ScorecardError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    return 0


# What each audit check needs beyond the database; a check whose source is missing is
# reported as skipped, never as passed.
AUDIT_CHECKS = (
    ("database", "ledger vs PostgreSQL: writes kept, deletes gone, nothing stuck", None),
    ("Cablecast", "each published VOD there exactly once", "cablecast_url"),
    ("cache", "Redis copies agree with PostgreSQL", "redis_url"),
    ("job stream", "no job left pending", "redis_url"),
)


def run_routes(run_dir: Path) -> str:
    """The route profile a run was made with (meta.json's options), else the contract."""
    try:
        routes = json.loads((run_dir / "meta.json").read_text())["options"]["routes"]
    except (OSError, ValueError, KeyError, TypeError):
        return "contract"
    return str(routes or "contract")


def cmd_audit(args: argparse.Namespace) -> int:
    from experiments.audit import no_audit_note
    from experiments.audit_contract import read_ledger, run_audit
    from experiments.audit_result import AuditError, Sources
    from experiments.audit_tables import audit_tables
    from experiments.experiment import Audit
    from workload.routes import Profile
    from workload.tomlconfig import ConfigError

    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        print(f"error: {run_dir}: no such run folder", file=sys.stderr)
        return 2
    ledgers = sorted(run_dir.glob("ledger-*.jsonl"))
    if not ledgers:
        print(f"error: {run_dir}: no ledger-*.jsonl (was the load run with it?)", file=sys.stderr)
        return 2
    try:
        profile = Profile.load(args.routes or run_routes(run_dir))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if (note := no_audit_note(profile)) is not None:
        print(f"audit of {run_dir}: {note}")
        return 0
    if profile.audit is not None and profile.audit.checks == "tables":
        try:
            result = audit_tables(run_dir, args.database_url, profile, Audit())
        except (AuditError, ValueError) as exc:
            print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
            return 2
        print(f"audit of {run_dir} (profile {profile.name}): checked {result.checked}")
        for note in result.notes:
            print(f"  note: {note}")
        for finding in result.lost:
            print(f"  lost: {finding.id}: {finding.problem}")
        return 1 if result.lost else 0
    events = read_ledger(run_dir)
    if not events:
        print(f"error: {run_dir}: the ledger files hold no acknowledged write", file=sys.stderr)
        return 2
    lines = sum(1 for p in ledgers for line in p.read_text().splitlines() if line.strip())
    sources = Sources(args.database_url, args.redis_url, args.cablecast_url)
    try:
        result = run_audit(run_dir, sources, Audit())
    except (AuditError, ValueError) as exc:  # ValueError: a URL the client cannot parse
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    print(f"audit of {run_dir}: {result.checked['vods']} VODs in the ledger")
    for name, what, needs in AUDIT_CHECKS:
        given = needs is None or getattr(sources, needs)
        state = "checked" if given else f"SKIPPED (no --{str(needs).replace('_', '-')})"
        print(f"  {name:<11} {what}: {state}")
    if lines > len(events):
        print(f"  note: {lines - len(events)} unreadable ledger lines skipped")
    for note in result.notes:
        if " not audited: " not in note:
            print(f"  note: {note}")
    found = result.counts()
    print(", ".join(f"{kind} {n}" for kind, n in found.items()))
    for kind in found:
        for finding in getattr(result, kind):
            print(f"  {kind}: VOD {finding.id}: {finding.problem}")
    return 1 if any(found.values()) else 0


def cmd_agree(args: argparse.Namespace) -> int:
    from experiments.agreement import agreement, render
    from experiments.scorecard import ScorecardError, read_report

    try:
        reports = [read_report(Path(d)) for d in args.run_dirs]
    except ScorecardError as exc:
        raise ExperimentError(str(exc)) from None
    names = {r["experiment"] for r in reports}
    if len(names) > 1:
        raise ExperimentError(f"the runs are of different experiments: {', '.join(sorted(names))}")
    rows = agreement(reports)
    print(render(rows, [Path(d).name for d in args.run_dirs]))
    return 0 if all(r.agrees for r in rows) else 1


def parser(prog: str = PROG) -> argparse.ArgumentParser:
    what = __doc__.split("\n")[0].split(": ", 1)[1]
    p = argparse.ArgumentParser(prog=prog, description=f"`{prog}`: {what}")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run one experiment")
    run.add_argument(
        "experiment", help="an experiment file, or NAME of config/experiments/NAME.toml"
    )
    run.add_argument("--host", help="an external Archivist (needs TOXIPROXY_URL, DATABASE_URL)")
    run.add_argument("--run-dir", help="run folder (default runs/<UTC stamp>-<name>)")
    run.add_argument("--no-audit", dest="audit", action="store_false", help="skip the audit")
    run.add_argument("--report", action="store_true", help="also write RUN/report.html")
    run.add_argument(
        "--routes",
        help="route/auth profile of config/routes/ (overrides load.routes): which routes the "
        "workload uses and what the audit checks",
    )
    run.add_argument(
        "--app-log",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="the app's log with --host (repeatable), for the findings; the reference "
        "stack's own logs are read without it",
    )
    run.add_argument(
        "--app",
        help="host this real Archivist in the stack (config/apps/NAME.toml, e.g. "
        "archivist-flask) instead of the reference one; its route profile is the default",
    )
    run.add_argument(
        "--app-src", help="the app's checkout (default: [stack] app_src, then $ARCHIVIST_SRC)"
    )
    run.add_argument(
        "--stack-config",
        type=Path,
        metavar="PATH",
        help="stack TOML of the started stack (default config/stack.toml); its app and "
        "app_src are hosted when neither --app nor the experiment's [stack] names an app",
    )
    run.set_defaults(func=cmd_run)
    sub.add_parser("list", aliases=["catalogue"], help="list the catalogue").set_defaults(
        func=cmd_list
    )
    check = sub.add_parser("check", help="validate experiment files")
    check.add_argument(
        "files", nargs="*", help="experiment files or folders of them (default: the catalogue)"
    )
    check.set_defaults(func=cmd_check)
    clean = sub.add_parser("cleanup", help="remove faults left by killed runs")
    clean.add_argument("--all", action="store_true", help="also those of running processes")
    clean.set_defaults(func=cmd_cleanup)
    res = sub.add_parser("resilience", help="run the catalogue and write a scorecard")
    res.add_argument("--only", help="a glob or name of experiments to run")
    res.add_argument("--out", help="scorecard folder (default runs/resilience-<stamp>)")
    res.add_argument("--budget", default="30m", help="stop starting experiments after this")
    res.set_defaults(func=cmd_resilience)
    card = sub.add_parser("scorecard", help="scorecard of finished runs")
    card.add_argument("run_dirs", nargs="+")
    card.add_argument("--out", required=True)
    card.set_defaults(func=cmd_scorecard)
    agree = sub.add_parser(
        "agree",
        help="do runs of one experiment agree, check by check?",
        description="Lines up the checks of finished runs' verdict.json files. Exit 0 when "
        "every check, recovery and verdict agrees, 1 when one differs, 2 unusable input.",
    )
    agree.add_argument("run_dirs", nargs="+", metavar="RUN")
    agree.set_defaults(func=cmd_agree)
    audit = sub.add_parser(
        "audit",
        help="check a run's ledger against the stores",
        description="Was anything the service acknowledged lost? Compares the run's "
        "ledger-*.jsonl with PostgreSQL and, when given, Cablecast and Redis. Checks whose "
        "source is not given are reported as skipped. Exit 0 every write kept, 1 findings, "
        "2 unusable input.",
    )
    audit.add_argument("run_dir", metavar="RUN", help="run folder with ledger-<pid>.jsonl files")
    audit.add_argument(
        "--routes",
        help="route/auth profile whose [audit] says what durable means "
        "(default: the run's own, from meta.json)",
    )
    audit.add_argument(
        "--database-url", required=True, help="the stack's PostgreSQL, e.g. postgresql://..."
    )
    audit.add_argument("--redis-url", help="the stack's Redis: also audit the cache and job stream")
    audit.add_argument(
        "--cablecast-url",
        help="Cablecast API base (.../CablecastAPI/v1): also audit what was published",
    )
    audit.set_defaults(func=cmd_audit)
    selftest = sub.add_parser(
        "selftest",
        add_help=False,  # its own options: `selftest --help`
        help="seed one defect at a time into a copy of the app and say what caught it",
    )
    selftest.set_defaults(func=None)
    return p


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    """The CLI; `prog` is the name it was started by (the old `python -m faults` too)."""
    given = sys.argv[1:] if argv is None else argv
    if given[:1] == ["selftest"]:  # its own parser (experiments/selftest.py)
        from experiments.selftest import main as selftest_main

        signal.signal(signal.SIGTERM, _terminate)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        return selftest_main(given[1:])
    args = parser(prog).parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    # A shell starts background jobs with SIGINT ignored and Python then keeps it ignored;
    # Ctrl-C (or a supervisor's SIGINT) must still roll back the faults and exit 130.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return int(args.func(args))
    except ExperimentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: every injected fault was removed", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

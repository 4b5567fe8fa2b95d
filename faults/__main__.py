"""`python -m faults`: run resilience experiments and look after what they inject.

    python -m faults run config/experiments/NAME.toml [--host URL] [--run-dir DIR] [--no-audit]
                         [--report]
    python -m faults list                 the catalogue: one line per experiment
    python -m faults check [FILE ...]     validate experiment files (all by default)
    python -m faults cleanup [--all]      remove faults left by killed runs
    python -m faults resilience [--only GLOB] [--out DIR]   the catalogue and its scorecard
    python -m faults scorecard RUN_DIR ... [--out DIR]      a scorecard of finished runs

Exit codes: 0 every check held, 1 a check failed, 2 the experiment could not be run
(bad file, stack did not start, ...), 130 interrupted (faults removed).
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType

from faults.experiment import REPO_ROOT, ExperimentError, load_experiment

CATALOGUE = REPO_ROOT / "config" / "experiments"


def _terminate(signum: int, frame: FrameType | None) -> None:
    """SIGTERM unwinds like Ctrl-C, so every `finally` (rollback, stack stop) runs."""
    raise KeyboardInterrupt


def catalogue_files(only: str | None = None) -> list[Path]:
    files = sorted(CATALOGUE.glob("*.toml"))
    if only:
        files = [f for f in files if f.match(only) or f.stem == only]
    return files


def cmd_run(args: argparse.Namespace) -> int:
    from faults.runner import RunError, default_run_dir, execute, external_target, reference_stack
    from faults.scorecard import render_report

    experiment = load_experiment(args.experiment)
    run_dir = Path(args.run_dir) if args.run_dir else default_run_dir(experiment)
    try:
        if args.host:
            outcome = execute(experiment, run_dir, external_target(args.host), audit=args.audit)
        else:
            print("starting the reference stack on free ports ...", file=sys.stderr)
            with reference_stack() as target:
                outcome = execute(experiment, run_dir, target, audit=args.audit)
    except RunError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(render_report(outcome.report))
    if args.report:
        html_report(run_dir)
    print(f"verdict: {'PASS' if outcome.ok else 'FAIL'}; details in {run_dir / 'verdict.json'}")
    return 0 if outcome.ok else 1


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
    files = [Path(f) for f in args.files] or catalogue_files()
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
    from faults.timeline import cleanup

    lines = cleanup(include_live=args.all)
    for line in lines:
        print(line)
    if not lines:
        print("nothing left behind")
    return 0


def cmd_resilience(args: argparse.Namespace) -> int:
    from faults.scorecard import run_catalogue

    files = catalogue_files(args.only)
    files = [f for f in files if f.stem != "demo" or args.only]
    if not files:
        print(f"error: no experiment in {CATALOGUE} matches {args.only!r}", file=sys.stderr)
        return 2
    return run_catalogue(files, Path(args.out) if args.out else None, args.budget)


def cmd_scorecard(args: argparse.Namespace) -> int:
    from faults.scorecard import ScorecardError, write_scorecard

    try:
        paths = write_scorecard([Path(d) for d in args.run_dirs], Path(args.out))
    except ScorecardError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m faults", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run one experiment")
    run.add_argument("experiment", help="config/experiments/NAME.toml")
    run.add_argument("--host", help="an external Archivist (needs TOXIPROXY_URL, DATABASE_URL)")
    run.add_argument("--run-dir", help="run folder (default runs/<UTC stamp>-<name>)")
    run.add_argument("--no-audit", dest="audit", action="store_false", help="skip the audit")
    run.add_argument("--report", action="store_true", help="also write RUN/report.html")
    run.set_defaults(func=cmd_run)
    sub.add_parser("list", aliases=["catalogue"], help="list the catalogue").set_defaults(
        func=cmd_list
    )
    check = sub.add_parser("check", help="validate experiment files")
    check.add_argument("files", nargs="*")
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
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
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

"""How much this suite would catch in the user's app: seed one defect at a time, run what
should catch it, and say what did.

    python -m experiments selftest --app-src PATH [--seeds NAME ...] [--slices N] [--list]

The catalogue is data (config/seeds/APP.toml): each seed's edits and its `check`, an
experiment or the paired gate. Every seed is applied to its own copy of the checkout in a
temporary folder (the checkout itself is never edited; Ctrl-C removes every copy, and the
runs stop their stacks), the check runs on that copy and once on the unmodified checkout,
and what the seeded copy shows beyond the unmodified one caught it
(experiments/selftest_judge.py). Run folders are kept under --run-dir.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from experiments.selftest_judge import Outcome, experiment_outcome, gate_outcome, row
from testbed.hosted.seeding import Seed, SeedError, in_order, load_seeds, seeded_copy

REPO_ROOT = Path(__file__).resolve().parents[1]
RUN_TIMEOUT_S = 2400.0
_FAILED = re.compile(r"^\| ❌ FAIL \| `([^`]*)`", re.M)


def run_check(
    check: str, app: str, src: Path, unmodified: Path, run_dir: Path, slices: int
) -> Outcome:
    """The seed's check on checkout `src`: an experiment's verdict, or the paired gate of
    `src` against the unmodified checkout."""
    run_dir.mkdir(parents=True, exist_ok=True)
    if check == "gate":
        argv = ["-m", "analysis", "gate", "--app", app, "--app-src", str(src)]
        argv += ["--against", str(unmodified), "--slices", str(slices)]
    else:
        name = check.removeprefix("experiment ")
        argv = [
            "-m",
            "experiments",
            "run",
            name,
            "--app-src",
            str(src),
            "--run-dir",
            str(run_dir / "run"),
        ]
    done = subprocess.run(
        [sys.executable, *argv], cwd=REPO_ROOT, capture_output=True, text=True,
        timeout=RUN_TIMEOUT_S, env=os.environ,
    )  # fmt: skip
    (run_dir / "output.txt").write_text(done.stdout + "\n--- stderr ---\n" + done.stderr)
    tail = (done.stderr.strip().splitlines() or [""])[-1]
    if check == "gate":
        return gate_outcome(done.returncode, _FAILED.findall(done.stdout), tail)
    verdict = run_dir / "run" / "verdict.json"
    if not verdict.is_file():
        return Outcome(True, frozenset(), frozenset(), error=f"exit {done.returncode}: {tail}")
    return experiment_outcome(json.loads(verdict.read_text()))


def selftest(
    app: str, src: Path, seeds: list[Seed], catalogue: dict[str, Seed], runs: Path, slices: int
) -> list[tuple[str, str, str, str, float]]:
    """(seed, kind, result, what caught it, seconds) per seed, and the unmodified copy's
    runs first (as "unmodified", one per check)."""
    table: list[tuple[str, str, str, str, float]] = []
    baseline: dict[str, Outcome] = {}
    with tempfile.TemporaryDirectory(prefix="loadkit-selftest-") as tmp:
        for check in dict.fromkeys(s.check for s in seeds):
            started = time.monotonic()
            if check == "gate":  # the unmodified copy against itself: no change to see
                print(f"unmodified: {check} (the same code on both sides) ...", flush=True)
            else:
                print(f"unmodified: {check} ...", flush=True)
            folder = runs / f"unmodified-{check.replace(' ', '-')}"
            outcome = run_check(check, app, src, src, folder, slices)
            baseline[check] = outcome
            gate_ok = not outcome.failed_checks if check == "gate" else True
            result = "error" if outcome.error else "passed" if gate_ok else "FALSE ALARM"
            if check == "gate":
                what = "; ".join(sorted(outcome.failed_checks)) or "no check failed"
            else:
                audit = "ok" if outcome.audit_ok else "NOT ok"
                what = f"{len(outcome.findings)} finding(s) of the app itself, audit {audit}"
            what = outcome.error or what
            table.append(("unmodified", check, result, what, time.monotonic() - started))
            if check == "gate":
                baseline[check] = Outcome(True, frozenset(), frozenset())  # changes are caught
        for seed in seeds:
            started = time.monotonic()
            print(f"{seed.name} ({seed.kind}): {seed.check} on a seeded copy ...", flush=True)
            copy = seeded_copy(src, Path(tmp) / seed.name, in_order(catalogue, [seed.name]))
            outcome = run_check(seed.check, app, copy, src, runs / seed.name, slices)
            result, what = row(seed.kind, outcome, baseline[seed.check])
            table.append((seed.name, seed.kind, result, what, time.monotonic() - started))
            print(f"  {result}: {what}", flush=True)
    return table


def render(table: list[tuple[str, str, str, str, float]]) -> str:
    lines = ["| seed | kind / check | result | caught by (beyond the unmodified copy) | minutes |"]
    lines.append("|---|---|---|---|---|")
    for name, kind, result, what, seconds in table:
        lines.append(f"| {name} | {kind} | {result} | {what} | {seconds / 60:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m experiments selftest",
        description="Seed one defect at a time into a copy of the app's checkout and run what "
        "should catch it; print what did (config/seeds/APP.toml).",
    )
    parser.add_argument("--app", default="archivist-flask", help="the hosted app (config/apps)")
    parser.add_argument(
        "--app-src", type=Path, default=os.environ.get("ARCHIVIST_SRC"),
        help="the app's checkout, never edited (default: $ARCHIVIST_SRC)",
    )  # fmt: skip
    parser.add_argument(
        "--seeds", nargs="*", help="seeds to run (default: every seed with a check)"
    )
    parser.add_argument("--slices", type=int, default=18, help="slices of each paired gate")
    parser.add_argument(
        "--run-dir", type=Path, help="where the runs go (default runs/selftest-<UTC>)"
    )
    parser.add_argument("--list", action="store_true", help="list the catalogue and exit")
    args = parser.parse_args(argv)
    try:
        catalogue = load_seeds(args.app)
        names = args.seeds or [s.name for s in catalogue.values() if s.check]
        seeds = [catalogue[n] for n in names if n in catalogue]
        unknown = sorted(set(names) - set(catalogue))
        if unknown:
            raise SeedError(f"no seed {unknown[0]!r} (known: {', '.join(sorted(catalogue))})")
        unchecked = [s.name for s in seeds if not s.check]
        if unchecked:
            raise SeedError(f"seed {unchecked[0]!r} names no check to run")
    except SeedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.list:
        for seed in catalogue.values():
            why = " ".join(seed.why.split())[:90]
            print(f"{seed.name:24} {seed.kind:7} {seed.check or '-':34} {why}")
        return 0
    if args.app_src is None:
        print(
            "error: --app-src PATH (or $ARCHIVIST_SRC) is needed: the app's checkout",
            file=sys.stderr,
        )
        return 2
    if not Path(args.app_src).is_dir():
        print(
            f"error: --app-src {args.app_src}: not a folder (the app's checkout)", file=sys.stderr
        )
        return 2
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    runs = (args.run_dir or REPO_ROOT / "runs" / f"selftest-{stamp}").resolve()
    try:
        table = selftest(
            args.app, Path(args.app_src).resolve(), seeds, catalogue, runs, args.slices
        )
    except KeyboardInterrupt:
        print(
            "interrupted: every seeded copy removed, the runs stopped their stacks", file=sys.stderr
        )
        return 130
    except SeedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    text = render(table)
    (runs / "selftest.md").write_text(text + "\n")
    print("\n" + text + f"\n\nruns: {runs}")
    bad = {"MISSED", "FLAGGED", "FALSE ALARM", "error"}
    return 1 if any(result in bad for _, _, result, _, _ in table) else 0

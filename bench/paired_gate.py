"""False alarms and catches of the paired gate on a busy machine, next to the stored-baseline gate.

    python bench/paired_gate.py [--runs 5] [--catch-runs 2] [--old-runs 3] [--hogs 2]
                                [--slices 18] [--slice-seconds 10] [--against HEAD]

While ``--hogs`` CPU hogs (``python -c 'while True: pass'``, started and killed here) keep
the cores busy it runs:

- ``--runs`` clean paired gates (``python -m analysis gate --against REF``, REF = this
  tree's commit, so any FAIL is a false alarm);
- ``--catch-runs`` paired gates with the candidate started with each regression switch
  (``--candidate-regression slow-list`` / ``no-cache``; a PASS is a miss);
- ``--old-runs`` runs of the stored-baseline gate as ``make gate`` runs it (the same seeded
  90 s Locust run, then ``gate RUN --baseline main``), on a stack with free ports.

Each line shows the verdict, the overall p95 row and the checks that failed. The machine
is shared: other work on it adds to the hogs, so the figures are for a busy box.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from analysis.config import PairedSettings  # noqa: E402
from analysis.paired_run import run_slice, stacks  # noqa: E402

OLD_GATE = PairedSettings(slices=2, slice_s=90.0, users=30, spawn_rate=10.0, stop_timeout_s=15.0)
RUN_TIMEOUT_S = 1800.0
P95_ROW = re.compile(r"^\| \S+ \S+ \| `ALL: p95 \+20%` \| ([^|]*) \| ([^|]*) \| ([^|]*) \|", re.M)


def start_hogs(n: int) -> list[subprocess.Popen[bytes]]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def stop_hogs(hogs: list[subprocess.Popen[bytes]]) -> None:
    for hog in hogs:
        hog.kill()
        hog.wait()


def verdict(out: str, code: int) -> str:
    """PASS/FAIL, the overall p95 row's change and the failed checks, from the gate's Markdown."""
    if code not in (0, 1) or "Performance gate" not in out:  # a traceback exits 1 too
        return f"ERROR exit {code}: {out.strip().splitlines()[-1:]}"
    p95 = P95_ROW.search(out)
    failed = re.findall(r"^\| ❌ FAIL \| `([^`]*)`", out, re.M)
    row = "no p95 row"
    if p95:
        row = f"p95 {p95.group(2).strip()} -> {p95.group(1).strip()} ms, {p95.group(3).strip()}"
    return f"{'PASS' if code == 0 else 'FAIL'}  {row}  failed: {failed}"


def paired(args: argparse.Namespace, regression: str | None) -> tuple[int, str]:
    cmd = [sys.executable, "-m", "analysis", "gate", "--against", args.against]
    cmd += ["--slices", str(args.slices), "--slice-seconds", f"{args.slice_seconds:g}"]
    cmd += ["--candidate-regression", regression] if regression else []
    proc = subprocess.Popen(
        cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        out, _ = proc.communicate(timeout=RUN_TIMEOUT_S)
    except BaseException:
        proc.terminate()  # the gate's SIGTERM path stops its stacks and removes its files
        proc.wait(180)
        raise
    return proc.returncode, out


def old_gate() -> tuple[int, str]:
    """``make gate`` on a stack with free ports (make's fixed ports may be taken here)."""
    with tempfile.TemporaryDirectory(prefix="old-gate-") as tmp:
        work = Path(tmp)
        env = dict(os.environ)
        with stacks([("candidate", REPO, None)], work, env) as (target,):
            run_slice(target, work / "run", OLD_GATE, env)
        cmd = [sys.executable, "-m", "analysis", "gate", str(work / "run"), "--baseline", "main"]
        done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
        return done.returncode, done.stdout + done.stderr


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="clean paired runs")
    parser.add_argument("--catch-runs", type=int, default=2, help="paired runs per regression")
    parser.add_argument("--old-runs", type=int, default=3, help="stored-baseline gate runs")
    parser.add_argument("--hogs", type=int, default=2, help="CPU hog processes")
    parser.add_argument("--slices", type=int, default=18)
    parser.add_argument("--slice-seconds", type=float, default=10.0)
    parser.add_argument("--against", default="HEAD", help="baseline ref (default HEAD)")
    parser.add_argument(
        "--log-dir", type=Path, default=REPO / "runs" / "bench-paired-gate",
        help="each run's whole output goes here (default: %(default)s)",
    )  # fmt: skip
    args = parser.parse_args()
    plan: list[tuple[str, str | None]] = [("clean", None)] * args.runs
    plan += [("slow-list", "slow-list")] * args.catch_runs
    plan += [("old-gate", None)] * args.old_runs
    plan += [("no-cache", "no-cache")] * args.catch_runs
    # Started in the background (`cmd &`), a script inherits SIGINT ignored, and so would
    # every gate it runs; SIGTERM stops the hogs like Ctrl-C does.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    print(f"{args.hogs} CPU hogs; paired: {args.slices} slices of {args.slice_seconds:g} s")
    outcomes: dict[str, list[int]] = {}
    hogs = start_hogs(args.hogs)
    try:
        for i, (kind, regression) in enumerate(plan, 1):
            started = time.monotonic()
            code, out = old_gate() if kind == "old-gate" else paired(args, regression)
            args.log_dir.mkdir(parents=True, exist_ok=True)
            (args.log_dir / f"{i:02d}-{kind}.txt").write_text(out)
            outcomes.setdefault(kind, []).append(code)
            took = time.monotonic() - started
            print(f"[{i}/{len(plan)}] {kind:9} {took:4.0f} s  {verdict(out, code)}", flush=True)
    finally:
        stop_hogs(hogs)
    print("\nsummary (a FAIL of a clean run is a false alarm; of a regression, a catch):")
    for kind, codes in outcomes.items():
        print(f"  {kind:9} FAIL {sum(c == 1 for c in codes)}/{len(codes)}"
              f"  errors {sum(c not in (0, 1) for c in codes)}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

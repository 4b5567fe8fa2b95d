"""The gate on a hosted real Archivist: quiet on unchanged runs, loud on a slower database.

    ARCHIVIST_SRC=PATH python bench/app_gate.py [--app archivist-flask] [--runs 2]
                                                [--slow-runs 2] [--latency-ms 100]

Each run is what ``make gate APP=archivist-flask`` does (``gate --start-stack``: a stack on
free ports hosting the checkout, the app's own load of ``[apps.NAME.run]``, gated against
its stored baseline with its own checks). ``--runs`` runs change nothing (a FAIL is a false
alarm); ``--slow-runs`` add ``--latency-ms`` to every answer of the PostgreSQL link for the
whole load, through the stack's fault server (a PASS is a miss): what a slower query or a
lost index would do to the app. One line per run: the verdict, the overall p95 change and
the failed checks. Only one stack can host the app at a time (its Redis proxy is :6379).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from analysis.cli import main as analysis_main  # noqa: E402
from analysis.config import load_config  # noqa: E402
from analysis.gate_load import chosen_target, record_run  # noqa: E402
from faults.client import FaultClient  # noqa: E402

P95_ROW = re.compile(r"^\| \S+ \S+ \| `ALL: p95 \+20%` \| ([^|]*) \| ([^|]*) \| ([^|]*) \|", re.M)


def slow_database(latency_ms: int) -> Any:
    def before_load(stack: Any) -> None:
        with FaultClient(stack.fault_url) as client:
            client.add_toxic("postgres", "latency", {"latency": latency_ms}, name="bench")

    return before_load


def one_run(args: argparse.Namespace, work: Path, i: int, latency_ms: int) -> str:
    os.chdir(REPO)
    target = chosen_target(args.app, args.app_src)
    config = load_config(REPO / "config" / "gate.toml", target.app)
    run_dir = work / f"run-{i}"
    hook = slow_database(latency_ms) if latency_ms else None
    record_run(config.run, target, run_dir, say=lambda _: None, before_load=hook)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = analysis_main(["gate", str(run_dir), "--baseline", config.run.baseline])
    text = out.getvalue()
    p95 = P95_ROW.search(text)
    failed = re.findall(r"^\| ❌ FAIL \| `([^`]*)`", text, re.M)
    row = "no p95 row"
    if p95 is not None:
        row = f"ALL p95 {p95.group(2).strip()} -> {p95.group(1).strip()} ({p95.group(3).strip()})"
    word = {0: "PASS", 1: "FAIL"}.get(code, f"ERROR {code}")
    return f"{word}  {row}  failed: {', '.join(failed) or '-'}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--app", default="archivist-flask")
    parser.add_argument("--app-src", default=os.environ.get("ARCHIVIST_SRC"))
    parser.add_argument("--runs", type=int, default=2, help="unchanged runs")
    parser.add_argument("--slow-runs", type=int, default=2, help="runs with a slower database")
    parser.add_argument("--latency-ms", type=int, default=100)
    args = parser.parse_args()
    if not args.app_src:  # `make bench` runs every script: say so and measure nothing
        print("skipped: no checkout of the app (--app-src PATH or ARCHIVIST_SRC=PATH)")
        return 0
    plan = [0] * args.runs + [args.latency_ms] * args.slow_runs
    with tempfile.TemporaryDirectory(prefix="bench-app-gate-") as tmp:
        for i, latency in enumerate(plan):
            what = f"postgres +{latency} ms" if latency else "unchanged"
            print(f"run {i + 1}/{len(plan)} ({what}): {one_run(args, Path(tmp), i, latency)}")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())

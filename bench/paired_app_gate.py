"""Power of the paired gate of two app versions: false alarms on the same code, catches of
seeded changes, and the time one gate takes, on the real app.

    python bench/paired_app_gate.py [--app-src SRC] [--runs 5] [--catch-runs 5]
                                    [--seeds slow-fast-route intermittent-500-write
                                             slower-db-route]
                                    [--slices 18]

SRC (default $ARCHIVIST_SRC) is the real Archivist's checkout, never edited. Each gate is
``python -m analysis gate --app archivist-flask --app-src NEW --against SRC``:

- ``--runs`` gates with NEW = SRC itself (the same code on both sides: a FAIL is a false
  alarm);
- ``--catch-runs`` gates per seed, NEW = a copy of SRC with that seed of
  config/seeds/archivist-flask.toml (a PASS is a miss).

Scenarios run interleaved (same, seed 1, seed 2, same, ...), so a drift of the machine
over the hour does not favour one. Every gate's output is kept in
runs/bench-paired-app-gate/; the table at the end is the figure.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from testbed.hosted.seeding import in_order, load_seeds, seeded_copy  # noqa: E402

OUT = REPO / "runs" / "bench-paired-app-gate"
GATE_TIMEOUT_S = 1800.0
SAME = "same code"


def verdict(out: str, code: int) -> tuple[str, list[str]]:
    """PASS/FAIL and the failed checks, from the gate's Markdown (else ERROR)."""
    if code not in (0, 1) or "Performance gate" not in out:
        return f"ERROR exit {code}", out.strip().splitlines()[-1:]
    return ("PASS" if code == 0 else "FAIL"), re.findall(r"^\| ❌ FAIL \| `([^`]*)`", out, re.M)


def gate(new: Path, old: Path, slices: int, log: Path) -> tuple[str, list[str], float]:
    argv = [sys.executable, "-m", "analysis", "gate", "--app", "archivist-flask"]
    argv += ["--app-src", str(new), "--against", str(old), "--slices", str(slices)]
    started = time.monotonic()
    done = subprocess.run(
        argv, cwd=REPO, capture_output=True, text=True, timeout=GATE_TIMEOUT_S, env=os.environ
    )
    log.write_text(done.stdout + "\n--- stderr ---\n" + done.stderr)
    result, failed = verdict(done.stdout + done.stderr, done.returncode)
    return result, failed, time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--app-src", type=Path, default=os.environ.get("ARCHIVIST_SRC"))
    parser.add_argument("--runs", type=int, default=5, help="gates of the same code")
    parser.add_argument("--catch-runs", type=int, default=5, help="gates per seed")
    seeds = ["slow-fast-route", "intermittent-500-write", "slower-db-route"]
    parser.add_argument("--seeds", nargs="*", default=seeds)
    parser.add_argument("--slices", type=int, default=18)
    args = parser.parse_args()
    if args.app_src is None:  # `make bench` runs every script: this one needs the real app
        print("skipped: no --app-src and no $ARCHIVIST_SRC (the real Archivist's checkout)")
        return 0
    if not Path(args.app_src).is_dir():
        parser.error(f"--app-src {args.app_src}: not a folder")
    src = Path(args.app_src).resolve()
    catalogue = load_seeds("archivist-flask")
    OUT.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[tuple[str, list[str], float]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-paired-app-") as tmp:
        copies = {SAME: src}
        for seed in args.seeds:
            copies[seed] = seeded_copy(src, Path(tmp) / seed, in_order(catalogue, [seed]))
        plan = [(SAME, n) for n in range(args.runs)]
        plan += [(seed, n) for n in range(args.catch_runs) for seed in args.seeds]
        plan.sort(key=lambda item: item[1])  # interleaved: round n of every scenario together
        for i, (scenario, n) in enumerate(plan):
            log = OUT / f"{time.strftime('%Y%m%dT%H%M%S')}-{scenario.replace(' ', '-')}-{n}.log"
            result, failed, seconds = gate(copies[scenario], src, args.slices, log)
            results.setdefault(scenario, []).append((result, failed, seconds))
            shown = "; ".join(failed[:4]) or "-"
            print(f"[{i + 1}/{len(plan)}] {scenario}: {result} in {seconds / 60:.1f} min ({shown})")
    print("\n| NEW | gates | FAIL | failed checks (each run) | minutes per gate (median) |")
    print("|---|---|---|---|---|")
    for scenario, rows in results.items():
        fails = sum(r == "FAIL" for r, _, _ in rows)
        checks = " / ".join(", ".join(f) or "-" for _, f, _ in rows)
        minutes = sorted(s / 60 for _, _, s in rows)[len(rows) // 2]
        print(f"| {scenario} | {len(rows)} | {fails} | {checks} | {minutes:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

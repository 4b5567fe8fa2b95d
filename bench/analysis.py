"""Benchmark of the analysis pipeline on a realistic synthetic run of 1,000,000 requests.

Ten names over ten minutes with errors and two fault windows, written in the capture
format (two process files), then: summary, compare against a second run (one endpoint
twice as slow) and the HTML report with every chart. Target: < 10 s for the three
timed stages on the 2-core dev machine.
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

# Run as `python bench/analysis.py`, this folder comes first on sys.path and this file's
# name would shadow the analysis package: drop it before importing.
_HERE = Path(__file__).resolve().parent
ROOT = _HERE.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from analysis.compare import compare_runs  # noqa: E402
from analysis.config import load_config  # noqa: E402
from analysis.gate import evaluate, passed  # noqa: E402
from analysis.html import render_report  # noqa: E402
from analysis.load import load_run  # noqa: E402
from analysis.stats import summarise  # noqa: E402
from analysis.synthetic import synthetic_requests, write_run  # noqa: E402

N = 1_000_000
T0 = 1_700_000_000.0
FAULTS = [(120.0, 180.0, 3.0), (400.0, 430.0, 5.0)]
TARGET_S = 10.0


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        windows = [
            {"start": T0 + a, "end": T0 + b, "link": "postgres", "what": f"latency x{f:g}"}
            for a, b, f in FAULTS
        ]
        base_dir = write_run(
            Path(tmp) / "base", synthetic_requests(N, seed=1, faults=FAULTS), windows
        )
        cur_dir = write_run(
            Path(tmp) / "cur",
            synthetic_requests(N, seed=2, faults=FAULTS, slow={"GET /api/3": 2.0}),
            windows,
        )
        size_mb = sum(p.stat().st_size for p in cur_dir.iterdir()) / 1e6
        print(
            f"setup (not timed): two runs of {N:,} requests, {size_mb:.1f} MB each on disk, "
            f"{time.perf_counter() - t:.2f} s"
        )

        stages: dict[str, float] = {}
        t = time.perf_counter()
        run = load_run(cur_dir)
        summary = summarise(run.samples, run.duration_s)
        stages["summary (load + exact percentiles)"] = time.perf_counter() - t

        t = time.perf_counter()
        base = load_run(base_dir)
        # The project's rules, minus the checks naming rows of the real workload
        # ("GET /api/vods"), which the synthetic names do not have.
        gate = replace(load_config(ROOT / "config" / "gate.toml"), absolute_names={})
        changes = compare_runs(base, run, gate.settings)
        checks = evaluate(run, gate, base, changes)
        stages["compare (load baseline + bootstrap + gate)"] = time.perf_counter() - t

        t = time.perf_counter()
        html = render_report(run, summary, checks, base, changes)
        stages["report (5 charts, self-contained HTML)"] = time.perf_counter() - t

    for name, secs in stages.items():
        print(f"{name:45s} {secs:6.2f} s")
    total = sum(stages.values())
    print(
        f"{'total':45s} {total:6.2f} s (target < {TARGET_S:g} s); report {len(html) / 1e3:.0f} kB"
    )
    print(
        f"gate: {'pass' if passed(checks) else 'FAIL'} "
        f"({', '.join(checks.loc[checks['status'] == 'fail', 'check'])})"
    )
    return 0 if total < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())

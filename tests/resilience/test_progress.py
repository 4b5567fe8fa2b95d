"""The runner's progress line: what happened in the current phase, not a rolling rate.

Locust's own Requests/s and Failures/s are a 10 s rolling window; right after a fault
ends they still show the fault, under the next phase's label. The line must count what
happened since the phase (or the set of active faults) changed.
"""

from __future__ import annotations

import io
from pathlib import Path

from faults.runner import Progress, current_totals

# Locust 2.x's stats history header (locust_stats_history.csv, written by --csv).
HEADER = (
    "Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,"
    "99.9%,99.99%,100%,Total Request Count,Total Failure Count,Total Median Response Time,"
    "Total Average Response Time,Total Min Response Time,Total Max Response Time,"
    "Total Average Content Size"
)


def append_row(run_dir: Path, second: int, rps: float, fps: float, total: int, failed: int):
    path = run_dir / "locust_stats_history.csv"
    if not path.exists():
        path.write_text(HEADER + "\n")
    percentiles = ",".join(["12"] * 11)
    with path.open("a") as f:
        f.write(
            f"{second},6,,Aggregated,{rps:f},{fps:f},{percentiles},{total},{failed},12,"
            "20.5,3,900,200\n"
        )


def test_the_line_counts_the_current_phase_not_locusts_rolling_rate(tmp_path: Path) -> None:
    out = io.StringIO()
    progress = Progress(out, total=180, every=0)
    assert current_totals(tmp_path) is None
    progress.show("before", 1, current_totals(tmp_path), [])
    assert "no stats yet" in out.getvalue()

    append_row(tmp_path, 1000, 9.0, 0.0, 500, 0)
    progress.show("during", 60, current_totals(tmp_path), ["latency on redis"])
    append_row(tmp_path, 1031, 14.0, 17.2, 640, 2)  # Locust's window: 17.2 fail/s
    progress.show("during", 91, current_totals(tmp_path), ["latency on redis"])
    during = out.getvalue().splitlines()[-1]
    assert "since 60s 140 requests ended, 2 failed (1.4%)" in during, during
    assert "17.2" not in during and "latency on redis" in during

    progress.show("after", 100, current_totals(tmp_path), [])  # counting starts again
    append_row(tmp_path, 1040, 10.0, 0.2, 700, 2)
    progress.show("after", 106, current_totals(tmp_path), [])
    after = out.getvalue().splitlines()[-1]
    assert after.startswith("after") and "since 100s 60 requests ended, 0 failed" in after, after


def test_a_stats_file_without_the_totals_gives_no_counts(tmp_path: Path) -> None:
    (tmp_path / "locust_stats_history.csv").write_text("Timestamp,Name\n1,Aggregated\n")
    assert current_totals(tmp_path) is None

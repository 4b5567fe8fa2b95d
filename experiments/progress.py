"""The progress line of a running experiment, from Locust's running totals.

Locust rewrites its `--csv` files every second; `current_totals` reads them (never
crashing the loop that holds faults in place) and `Progress` shows the counts of the
current stretch, known defects of the app apart, as the verdict counts them.
"""

from __future__ import annotations

import contextlib
import csv
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from experiments.verdict import KNOWN_DEFECT


@dataclass(frozen=True)
class Totals:
    """Locust's running totals (every entry it counts, HTTP and WORKFLOW) at one moment.

    `known_defects`: those of the failures that are answers the route profile lists as the
    app's own defects ([defects]); like the verdict, the progress line counts them apart.
    """

    requests: int
    failures: int
    known_defects: int = 0


def _csv_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a CSV file Locust rewrites in place; OSError or csv.Error if it
    cannot be read (the progress loop runs while faults are in place: it must not crash)."""
    with path.open(newline="", errors="replace") as f:
        rows = list(csv.reader(f))
    return (rows[0], rows[1:]) if rows else ([], [])


def known_defects_of(path: Path) -> int:
    """How many failures in Locust's failures CSV are known defects of the app.

    Locust writes an error as the exception's repr (`KnownDefect('known defect of ...')`);
    the workload's request ledger as `KnownDefect: ...` (the verdict's KNOWN_DEFECT).
    """
    try:
        columns, rows = _csv_rows(path)
        error, count = columns.index("Error"), columns.index("Occurrences")
    except (OSError, ValueError, csv.Error):
        return 0
    defect = KNOWN_DEFECT.removesuffix(":")
    known = 0
    for row in rows:
        if len(row) == len(columns) and row[error].startswith((KNOWN_DEFECT, defect + "(")):
            with contextlib.suppress(ValueError):
                known += int(row[count])
    return known


def current_totals(run_dir: Path) -> Totals | None:
    """Latest aggregated totals from Locust's `--csv` files (rewritten every second).

    Totals, not Locust's Requests/s and Failures/s: those are a rolling 10 s window,
    which after a phase change still shows the previous phase. The counts come from
    locust_stats.csv and the known defects from locust_failures.csv, which Locust
    rewrites in the same pass (its stats history is flushed only every few seconds, so
    it would lag the failures behind); the failures are read first, so the known defects
    are never more recent than the failures they are part of.
    """
    known = known_defects_of(run_dir / "locust_failures.csv")
    try:
        columns, rows = _csv_rows(run_dir / "locust_stats.csv")
        name, total, failed = (columns.index(c) for c in ("Name", "Request Count", "Failure Count"))
    except (OSError, ValueError, csv.Error):
        return None
    for row in reversed(rows):
        if len(row) == len(columns) and row[name] == "Aggregated":
            with contextlib.suppress(ValueError):
                return Totals(int(row[total]), int(row[failed]), known)
    return None


class Progress:
    """One updating line on a terminal; a line every few seconds otherwise.

    The counts are those of the current stretch: requests that ENDED since the phase or
    the set of active faults last changed (give or take the second between Locust's CSV
    writes), so a line labelled `during` shows only what happened during that fault.
    Locust counts a request when it ends, so one that started in a fault and timed out
    after it is counted in the next stretch; the verdict goes by start time. Known
    defects of the app (the route profile's [defects]) are not counted as failed but
    apart, as the verdict counts them: they fail in every phase, fault or not.
    """

    def __init__(self, out: IO[str], total: float, every: float | None = None) -> None:
        self.out = out
        self.total = total
        self.tty = out.isatty()
        self.every = every if every is not None else (0.5 if self.tty else 5.0)
        self.last = -math.inf
        self.stretch: tuple[str, tuple[str, ...]] | None = None
        self.since = 0.0
        self.base: Totals | None = None

    def show(self, phase: str, elapsed: float, totals: Totals | None, active: list[str]) -> None:
        stretch = (phase, tuple(active))
        if stretch != self.stretch:
            self.stretch, self.since = stretch, elapsed
            self.base = totals or Totals(0, 0)
        now = time.monotonic()
        if now - self.last < self.every:
            return
        self.last = now
        if totals is None or self.base is None:
            counts = "(no stats yet)"
        else:
            n = totals.requests - self.base.requests
            known = totals.known_defects - self.base.known_defects
            failed = totals.failures - self.base.failures - known
            share = f" ({failed / n:.1%})" if n else ""
            counts = f"since {self.since:.0f}s {n} requests ended, {failed} failed{share}"
            if known:
                counts += f", {known} known defect{'s' if known != 1 else ''}"
        faults = ", ".join(active) if active else "no fault"
        line = f"{phase:<7} {elapsed:5.0f}/{self.total:.0f}s | {counts} | {faults}"
        if self.tty:
            self.out.write("\r" + line[:160].ljust(160))
        else:
            self.out.write(line + "\n")
        self.out.flush()

    def say(self, text: str) -> None:
        if self.tty:
            self.out.write("\r" + " " * 160 + "\r")
        self.out.write(text + "\n")
        self.out.flush()

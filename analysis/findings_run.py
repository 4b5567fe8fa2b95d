"""The findings of a run folder: its requests, fault windows, route profile and app logs.

The one place that reads files for analysis.findings, shared by ``python -m analysis
findings``, the HTML report and ``python -m experiments run``. App logs are the files given
plus those the experiment runner copied into the run folder (``app-logs/*.log``), so a
run folder reports the same findings after its stack is gone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from analysis.answers_run import answer_rows
from analysis.app_logs import read_logs
from analysis.causes import with_causes
from analysis.findings import ACROSS_ROUTES, COLUMNS, find
from analysis.findings_rules import Rules, load_rules, profile_of
from analysis.leaks import with_leaks
from analysis.load import read_faults, read_meta, read_requests

APP_LOG_DIR = "app-logs"


@dataclass(frozen=True)
class RunFindings:
    table: pd.DataFrame
    rules: Rules
    logs: tuple[Path, ...]


def app_logs_of(run_dir: Path, extra: Sequence[Path] = ()) -> tuple[Path, ...]:
    """The app logs a run folder holds, then the given ones (each once)."""
    held = sorted((run_dir / APP_LOG_DIR).glob("*.log"))
    return tuple(dict.fromkeys([*held, *extra]))


def run_findings(
    run_dir: Path, app_logs: Sequence[Path] = (), routes: str | None = None
) -> RunFindings:
    """Findings of `run_dir` under the profile `routes` (default: the one the run used).

    InputError (from analysis.load) names a missing or unreadable file.
    """
    requests = read_requests(run_dir)
    meta = read_meta(run_dir)
    profile = routes or profile_of(meta)
    rules = load_rules(profile)
    logs = app_logs_of(run_dir, app_logs)
    start = meta.get("start")
    t0 = float(start) if isinstance(start, int | float) else None
    faults = read_faults(run_dir)
    table = find(requests, faults, rules, read_logs(logs), t0)
    # Answers held to the data (analysis.answers_run): after the status/shape/latency kinds.
    since = t0 if t0 is not None else float(requests["t_start"].min()) if len(requests) else 0.0
    rows = answer_rows(run_dir, profile, faults, since, rules.grace_s)
    held = pd.DataFrame(rows, columns=list(COLUMNS))
    if not held.empty:
        table = pd.concat([table, held], ignore_index=True) if not table.empty else held
    table = with_leaks(table, run_dir, requests, faults, t0)  # RUN/resources.csv
    if not table.empty:
        table = with_causes(table, ACROSS_ROUTES)
    return RunFindings(table, rules, logs)

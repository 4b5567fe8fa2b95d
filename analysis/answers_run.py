"""The answers findings of a run folder: what it read and was told, against what was held.

Reads the workload's observations (``observations-*.jsonl``, workload.observations), what
the stores held (``answers-truth.json``, experiments.answer_truth), the ledger's
acknowledgements (``ledger-*.jsonl``) and the tables audit's missing rows (``audit.json``,
written by the experiment runner), and judges them with analysis.wrong_answers. A run
without a truth file (a plain Locust run) has its wrong answers left unjudged; its
acknowledged writes of ``not_durable`` requests are still reported.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.load import InputError
from analysis.wrong_answers import never_stored, wrong_answers
from workload.answer_rules import TRUTH_FILE, load_answer_checks, profile_file, read_observations
from workload.routes import Profile
from workload.run_lines import ledger_entries
from workload.tomlconfig import ConfigError

AUDIT_FILE = "audit.json"  # the audit's result, as verdict.json holds it


def _json(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None
    return data if isinstance(data, dict) else {}


def answer_rows(
    run_dir: Path, profile: str, faults: pd.DataFrame, t0: float, grace_s: float
) -> list[dict[str, Any]]:
    """The ``wrong answer`` and ``never stored`` rows of `run_dir` under `profile` (a name
    or path); InputError names an unusable file."""
    try:
        loaded = Profile.load(profile)
        checks = load_answer_checks(profile_file(profile))
    except ConfigError as exc:
        raise InputError(str(exc)) from None
    endpoints = {
        c.route: f"{loaded.route(c.route).method} {loaded.route(c.route).name}" for c in checks
    }
    rows = []
    truth = _json(run_dir / TRUTH_FILE)
    if truth and checks:
        seen = read_observations(run_dir)
        rows += wrong_answers(checks, endpoints, seen, truth, faults, t0, grace_s)
    audit = loaded.audit
    acks = [e for e in ledger_entries(run_dir) if "ts" in e]
    for ack in acks:
        ack["request"] = str(ack.get("request", "")).replace("{id}", "[id]")
    missing = [
        {**f, "request": str(f["request"]).replace("{id}", "[id]")}
        for f in _json(run_dir / AUDIT_FILE).get("lost", [])
        if isinstance(f, dict) and f.get("request")
    ]
    if audit is not None:
        not_durable = {
            r.replace("{id}", "[id]"): audit.not_durable_id.get(r, "") for r in audit.not_durable
        }
        rows += never_stored(not_durable, acks, missing, faults, t0, grace_s)
    return rows

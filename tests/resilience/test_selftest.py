"""The selftest's judgement (what caught a seed) and its command line, without running
the app; the real runs are in test_selftest_real.py."""

from __future__ import annotations

import subprocess
from pathlib import Path

from experiments.selftest_judge import Outcome, caught_by, experiment_outcome, gate_outcome, row
from tests.conftest import run_module, without_archivist_src

ROOT = Path(__file__).resolve().parents[2]
APP_ITSELF = Outcome(True, frozenset({"server error POST /api/vod/publish/[id]"}), frozenset())


def verdict(findings: list[tuple[str, str]], audit_ok: bool, failed: bool) -> dict:
    check = {"metric": "p95_ms", "bound": "< 2500", "ok": not failed, "skipped": ""}
    return {
        "audit": {"ok": audit_ok},
        "findings": [{"kind": k, "endpoint": e} for k, e in findings],
        "verdict": {"phases": [{"label": "before", "checks": [check]}]},
    }


def test_only_what_the_unmodified_copy_lacks_catches_a_seed() -> None:
    leak = experiment_outcome(
        verdict(
            [("server error", "POST /api/vod/publish/[id]"), ("leak", "postgres connections")],
            audit_ok=True,
            failed=False,
        )
    )
    assert caught_by(leak, APP_ITSELF) == ["finding leak postgres connections"]
    assert row("defect", leak, APP_ITSELF)[0] == "caught"
    same = experiment_outcome(
        verdict([("server error", "POST /api/vod/publish/[id]")], True, False)
    )
    assert row("defect", same, APP_ITSELF) == ("MISSED", "nothing beyond the unmodified copy")


def test_an_audit_failure_a_failed_check_and_a_gate_failure_each_catch() -> None:
    lost = experiment_outcome(verdict([], audit_ok=False, failed=True))
    assert caught_by(lost, APP_ITSELF) == ["audit", "check before: p95_ms < 2500"]
    gate = gate_outcome(1, ["GET /api/member-cities: p50 +50%"])
    assert row("defect", gate, Outcome(True, frozenset(), frozenset())) == (
        "caught",
        "check GET /api/member-cities: p50 +50%",
    )
    crashed = gate_outcome(2, [], "error: port 6379 taken")
    assert row("defect", crashed, APP_ITSELF) == (
        "error",
        "gate exit 2: error: port 6379 taken",
    )


def test_a_fix_passes_when_nothing_new_shows_and_is_flagged_otherwise() -> None:
    fixed = experiment_outcome(verdict([], audit_ok=True, failed=False))  # fewer findings
    assert row("fix", fixed, APP_ITSELF) == ("passed", "nothing new")
    worse = experiment_outcome(verdict([("wrong answer", "GET /api/x")], True, False))
    assert row("fix", worse, APP_ITSELF)[0] == "FLAGGED"


def selftest(*args: str) -> subprocess.CompletedProcess[str]:
    return run_module("experiments", "selftest", *args, timeout=60, env=without_archivist_src())


def test_the_command_lists_the_catalogue_and_answers_bad_input_with_exit_2() -> None:
    listed = selftest("--list")
    assert listed.returncode == 0 and "connection-leak" in listed.stdout
    assert "experiment archivist-soak-short" in listed.stdout
    unknown = selftest("--seeds", "nope")
    assert unknown.returncode == 2 and "no seed 'nope'" in unknown.stderr
    no_src = selftest()
    assert (
        no_src.returncode == 2 and "--app-src PATH (or $ARCHIVIST_SRC) is needed" in no_src.stderr
    )
    assert "Traceback" not in unknown.stderr + no_src.stderr

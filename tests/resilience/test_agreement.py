"""Runs of one experiment lined up check by check: a flipped verdict is shown and fails."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from experiments.agreement import agreement, render
from experiments.cli import main


def report(p95_ok: bool, skipped: str = "") -> dict:
    check = {"metric": "p95_ms", "bound": "< 150% of before", "value": 640.0, "ok": p95_ok}
    return {
        "experiment": "archivist-demo",
        "verdict": {
            "ok": p95_ok,
            "phases": [
                {
                    "label": "during #2: latency on postgres",
                    "checks": [{**check, "samples": 312, "skipped": skipped}],
                }
            ],
            "recoveries": [{"episode": 1, "what": "redis down", "seconds": 2.5, "ok": True}],
        },
    }


def test_runs_that_agree_and_a_flipped_check_that_does_not() -> None:
    rows = agreement([report(True), report(True)])
    assert all(r.agrees for r in rows) and len(rows) == 3
    flipped = agreement([report(True), report(False), report(True, skipped="too few")])
    p95 = flipped[0]
    assert p95.words == ("ok", "FAILED", "SKIPPED") and not p95.agrees
    assert p95.values[0] == "640 ms n=312"
    text = render(flipped, ["a", "b", "c"])
    assert "DIFFER during #2: latency on postgres" in text
    assert "1 of 3 verdicts agree across 3 runs" in text


def test_the_cli_exits_1_on_a_difference_and_2_on_a_missing_run(tmp_path: Path, capsys) -> None:
    for name, ok in (("a", True), ("b", False)):
        (tmp_path / name).mkdir()
        data = copy.deepcopy(report(ok)) | {"run_dir": str(tmp_path / name)}
        (tmp_path / name / "verdict.json").write_text(json.dumps(data))
    assert main(["agree", str(tmp_path / "a"), str(tmp_path / "a")]) == 0
    assert main(["agree", str(tmp_path / "a"), str(tmp_path / "b")]) == 1
    assert main(["agree", str(tmp_path / "a"), str(tmp_path / "nope")]) == 2
    assert "nope/verdict.json: cannot read" in capsys.readouterr().err

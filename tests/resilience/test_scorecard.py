"""The scorecard: one row per experiment from verdict.json files, as Markdown and a chart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiments.scorecard import ScorecardError, render_report, write_scorecard


def verdict(name: str, ok: bool, error_rate: float, recovery: float | None, lost: int) -> dict:
    stats = {
        "requests": 100,
        "errors": int(100 * error_rate),
        "error_rate": error_rate,
        "p95_ms": 850.0,
        "throughput": 10.0,
        "seconds": 10.0,
    }
    check = {"metric": "error_rate", "bound": "< 50%", "value": error_rate, "ok": ok}
    return {
        "experiment": name,
        "title": name,
        "run_dir": f"runs/{name}",
        "ok": ok,
        "verdict": {
            "ok": ok,
            "phases": [
                {
                    "phase": "during",
                    "label": "during #1: redis down",
                    "stats": stats,
                    "checks": [check],
                    "ok": ok,
                    "start": 0,
                    "end": 10,
                }
            ],
            "recoveries": [
                {
                    "episode": 1,
                    "what": "redis down",
                    "fault_end": 10.0,
                    "seconds": recovery,
                    "limit": 10.0,
                    "ok": recovery is not None,
                }
            ],
            "notes": [],
        },
        "audit": {
            "ok": lost == 0,
            "counts": {"lost": lost, "duplicated": 0, "inconsistent": 0, "stuck": 0},
            "limits": {"lost_writes": 0, "duplicates": 0, "inconsistent": 0, "stuck": 0},
            "checked": {"vods": 3},
            "lost": [{"id": 7, "problem": "not in the database"}] * lost,
            "duplicated": [],
            "inconsistent": [],
            "stuck": [],
            "notes": [],
        },
    }


def test_the_scorecard_has_a_row_per_experiment_and_a_chart(tmp_path: Path) -> None:
    dirs = []
    for name, ok, rate, recovery, lost in [
        ("redis-down", True, 0.4, 2.5, 0),
        ("postgres-timeout", False, 0.9, None, 1),
    ]:
        d = tmp_path / name
        d.mkdir()
        (d / "verdict.json").write_text(json.dumps(verdict(name, ok, rate, recovery, lost)))
        dirs.append(d)
    paths = write_scorecard(dirs, tmp_path / "card", {"cablecast-down": "stack died"})
    md = (tmp_path / "card" / "scorecard.md").read_text()
    assert "1 of 3 experiments passed" in md
    assert "| redis-down | PASS | 40.0% | 850 | 2.5s | 0 | 0 | 0 | 0 |" in md
    assert "| postgres-timeout | **FAIL** | 90.0% | 850 | never | 1 | 0 | 0 | 0 |" in md
    assert "| cablecast-down | **ERROR** | stack died" in md
    png = tmp_path / "card" / "scorecard.png"
    assert png in paths and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = render_report(verdict("postgres-timeout", False, 0.9, None, 1))
    assert "recovery #1: never (target 10s) FAILED: redis down" in text
    assert "lost: vod 7: not in the database" in text


def test_a_folder_without_a_verdict_is_named(tmp_path: Path) -> None:
    with pytest.raises(ScorecardError, match=f"{tmp_path}/verdict.json: cannot read"):
        write_scorecard([tmp_path], tmp_path / "card")


def test_a_fault_that_hit_nothing_is_named_in_the_report_and_the_scorecard(
    tmp_path: Path,
) -> None:
    report = verdict("cablecast-latency", False, 0.0, 0.0, 0)
    why = "latency latency=500 on cablecast: the cablecast link carried no byte during its 3.0s"
    report["verdict"]["hit_nothing"] = [why]
    report["links"] = {"cablecast": {"upstream": 0, "downstream": 0}, "redis": {"upstream": 9}}
    report["coverage"] = {"skipped": ["Reader.read: skipped 2 of 2 runs: x (2x)"], "notes": []}
    report["audit"], report["audit_note"] = None, "profile bare defines no audit"
    text = render_report(report)
    assert f"FAULT HIT NOTHING (no verdict): {why}" in text
    assert "bytes per link over the load: cablecast 0, redis 9" in text
    assert "skipped: Reader.read: skipped 2 of 2 runs: x (2x)" in text
    assert "audit: profile bare defines no audit" in text
    run = tmp_path / "cablecast-latency"
    run.mkdir()
    (run / "verdict.json").write_text(json.dumps(report))
    write_scorecard([run], tmp_path / "card")
    md = (tmp_path / "card" / "scorecard.md").read_text()
    assert "| cablecast-latency | **FAULT HIT NOTHING** |" in md


def test_the_report_names_the_apps_defects_the_p95_routes_and_the_bytes_in_each_window() -> None:
    report = verdict("archivist-redis-down", False, 1.0, 0.0, 0)
    phase = report["verdict"]["phases"][0]
    phase["stats"]["known_defects"] = 9
    phase["defects"] = [
        {"why": "the limiter needs Redis", "link": "redis", "answers": 88, "routes": ["GET /b"]}
    ]
    report["p95_routes"] = ["upload", "get_file"]
    report["windows"] = [
        {"what": "redis down", "link": "redis", "toxic": "down", "bytes": 0},
        {"what": "latency on postgres", "link": "postgres", "toxic": "latency", "bytes": 33089},
    ]
    text = render_report(report)
    assert "  + 9 answers that are known defects of the app" in text
    assert "  APP DEFECT under this fault: 88 answers on GET /b: the limiter needs Redis" in text
    assert "p95 ms of the routes upload, get_file only" in text
    assert "redis down: the redis link carried 0 bytes in its window (down:" in text
    assert "the postgres link carried 33089 bytes in its window\n" in text

"""Rows are keyed by method and name, as Locust keys its statistics: a gate never mixes the
reads and writes of one path, and the project's gate config names rows that exist."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.baseline import load_baseline, save_baseline
from analysis.compare import compare_runs
from analysis.config import Settings, load_config, parse_config
from analysis.gate import evaluate
from analysis.load import InputError, Run, load_run, per_second_counts, to_samples
from analysis.stats import summarise
from analysis.synthetic import write_run

ROOT = Path(__file__).resolve().parents[2]


def _requests(n: int = 3000, seconds: float = 60.0) -> pd.DataFrame:
    """GET /api/vods at 10 ms, POST /api/vods at 40 ms, interleaved over ``seconds``."""
    t = np.linspace(0.0, seconds, n, endpoint=False)
    post = np.arange(n) % 3 == 0
    return pd.DataFrame(
        {
            "t_start": 1_700_000_000.0 + t,
            "name": "/api/vods",
            "type": np.where(post, "POST", "GET"),
            "latency_us": np.where(post, 40_000, 10_000),
            "ok": True,
            "error": None,
            "size": 10,
            "pid": 1,
            "worker": 0,
            "intended_start": np.nan,
        }
    )


def _run(requests: pd.DataFrame) -> Run:
    s = to_samples(requests, t0=float(requests["t_start"].min()))
    return Run(samples=s, counts=per_second_counts(s), duration_s=60.0)


def test_get_and_post_of_one_path_are_separate_rows() -> None:
    summary = summarise(_run(_requests()).samples, 60.0)
    assert set(summary.index) == {"GET /api/vods", "POST /api/vods", "ALL"}
    assert summary.loc["GET /api/vods", "p95"] == pytest.approx(10.0)
    assert summary.loc["POST /api/vods", "p95"] == pytest.approx(40.0)
    assert summary.loc["POST /api/vods", "requests"] == 1000


def test_a_slower_write_fails_the_write_row_not_the_read_row() -> None:
    base = _run(_requests())
    slower = _requests()
    slower.loc[slower["type"] == "POST", "latency_us"] *= 2
    config = parse_config(
        {
            "settings": {"resamples": 200},
            "absolute": {"names": {"GET /api/vods": ["p95 < 20ms"]}},
            "relative": {"per_name": ["p95 +25%"]},
        }
    )
    checks = evaluate(_run(slower), config, base).set_index("check")
    assert checks.loc["GET /api/vods: p95 < 20ms", "status"] == "pass"
    assert checks.loc["POST /api/vods: p95 +25%", "status"] == "fail"
    assert checks.loc["GET /api/vods: p95 +25%", "status"] == "pass"
    changes = compare_runs(base, _run(slower), Settings(resamples=200))
    p95 = changes[changes["metric"] == "p95"].set_index("name")["change"]
    assert p95["POST /api/vods"] == pytest.approx(1.0) and p95["GET /api/vods"] == 0.0


def test_a_check_naming_the_path_without_method_says_which_rows_exist() -> None:
    config = parse_config({"absolute": {"names": {"/api/vods": ["p95 < 20ms"]}}})
    row = evaluate(_run(_requests()), config).iloc[0]
    assert row["status"] == "fail"
    assert "'GET /api/vods'" in row["detail"] and "'POST /api/vods'" in row["detail"]


def test_baseline_keeps_method_keys_and_refuses_an_old_one(tmp_path: Path) -> None:
    run = load_run(write_run(tmp_path / "run", _requests()))
    save_baseline(run, "keyed", tmp_path / "b")
    loaded = load_baseline("keyed", tmp_path / "b")
    assert set(loaded.samples["name"]) == {"GET /api/vods", "POST /api/vods"}
    assert set(loaded.counts["name"]) == {"GET /api/vods", "POST /api/vods"}
    # A baseline saved before the keys (no "keys" in baseline.json) merged GET and POST:
    # it cannot be split again, so it is refused with what to do, not silently mismatched.
    info_path = tmp_path / "b" / "keyed" / "baseline.json"
    info = json.loads(info_path.read_text())
    del info["keys"]
    info_path.write_text(json.dumps(info))
    with pytest.raises(InputError, match=r"predates rows keyed by method and name.*save it again"):
        load_baseline("keyed", tmp_path / "b")


def test_project_gate_names_rows_of_the_stored_baseline() -> None:
    """Every per-name check in config/gate.toml matches a row of config/baselines/main, and
    the GET and POST rows of /api/vods are gated apart, with enough data not to skip."""
    config = load_config(ROOT / "config" / "gate.toml")
    baseline = load_baseline("main", ROOT / "config" / "baselines")
    names = set(baseline.samples["name"])
    assert config.absolute_names, "gate.toml should show a per-name check"
    assert set(config.absolute_names) <= names
    assert {"GET /api/vods", "POST /api/vods"} <= names
    checks = evaluate(baseline, config, baseline).set_index("check")
    for name, rules in config.absolute_names.items():
        for rule in rules:
            row = checks.loc[f"{name}: {rule.text}"]
            assert row["status"] == "pass", row["detail"]
    assert checks.loc["GET /api/vods: p95 +25%", "status"] == "pass"

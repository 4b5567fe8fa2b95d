"""Threshold strings in config/gate.toml parse to precise checks, or fail with a message."""

from __future__ import annotations

from pathlib import Path

import pytest

from analysis.config import load_config, parse_absolute, parse_config, parse_relative
from analysis.load import InputError

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("text", "metric", "op", "value"),
    [
        ("p95 < 500ms", "p95", "<", 500.0),
        ("p99<=1.5s", "p99", "<=", 1500.0),
        ("p50 < 800us", "p50", "<", 0.8),
        ("corrected_p95 < 800", "corrected_p95", "<", 800.0),
        ("error_rate < 1%", "error_rate", "<", 0.01),
        ("throughput > 20/s", "throughput", ">", 20.0),
        ("p99.9 < 2s", "p99.9", "<", 2000.0),
    ],
)
def test_absolute_thresholds_parse(text: str, metric: str, op: str, value: float) -> None:
    rule = parse_absolute(text)
    assert (rule.metric, rule.op) == (metric, op)
    assert rule.value == pytest.approx(value)


def test_absolute_threshold_direction() -> None:
    rule = parse_absolute("p95 < 500ms")
    assert rule.passes(499.9) and not rule.passes(500.0)


@pytest.mark.parametrize(
    ("text", "direction", "limit", "kind"),
    [
        ("p95 +20%", 1, 0.20, "ratio"),
        ("throughput -15%", -1, 0.15, "ratio"),
        ("error_rate +1pp", 1, 0.01, "diff"),
    ],
)
def test_relative_thresholds_parse(text: str, direction: int, limit: float, kind: str) -> None:
    rule = parse_relative(text)
    assert (rule.direction, rule.kind) == (direction, kind)
    assert rule.limit == pytest.approx(limit)


@pytest.mark.parametrize(
    "text", ["p95 < fast", "p95 500ms", "latency < 5ms", "error_rate < 5ms", "p100 < 5ms"]
)
def test_bad_absolute_threshold_names_the_text(text: str) -> None:
    with pytest.raises(InputError, match=r"absolute\.overall\[0\]"):
        parse_config({"absolute": {"overall": [text]}}, "gate.toml")


def test_bad_relative_threshold_is_explained() -> None:
    with pytest.raises(InputError, match=r"pp.*error_rate only"):
        parse_relative("p95 +5pp")
    with pytest.raises(InputError, match=r'"p95 20%" is not a relative threshold'):
        parse_relative("p95 20%")


def test_unknown_setting_lists_known_ones() -> None:
    with pytest.raises(InputError, match=r"settings\.confidnce is not a setting; known: "):
        parse_config({"settings": {"confidnce": 0.9}})


def test_project_gate_config_loads() -> None:
    cfg = load_config(ROOT / "config" / "gate.toml")
    assert cfg.relative_overall and cfg.absolute_overall


def test_missing_and_broken_config(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="gate config not found"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[settings\n")
    with pytest.raises(InputError, match="not valid TOML"):
        load_config(bad)


def test_run_section_is_the_gates_own_load() -> None:
    cfg = parse_config({"run": {"users": 5, "duration_s": 20, "baseline": "b"}})
    assert (cfg.run.users, cfg.run.duration_s, cfg.run.baseline) == (5, 20, "b")
    assert cfg.run.locustfile == "locustfiles/vod.py" and cfg.run.routes == ""


def test_the_gates_load_runs_on_locusts_workers_as_run_says() -> None:
    from analysis.gate_load import locust_command

    def flags(run: dict[str, object]) -> list[str]:
        command = locust_command(parse_config({"run": run}).run, Path("r"), "u", "c", "p", {})
        return command[command.index("--run-dir") + 2 :]

    assert flags({}) == []
    assert flags({"workers": 2}) == ["--processes", "2"]
    remote = flags({"expect_workers": 3, "master_bind_host": "*"})
    assert remote[:3] == ["--master", "--expect-workers", "3"] and "*" in remote


@pytest.mark.parametrize(
    ("run", "message"),
    [
        ({"users": 0}, r"run: users must be >= 1"),
        ({"users": "30"}, r"run: users must be a whole number"),
        ({"duration_s": -1}, r"run: duration_s must be > 0"),
        ({"locustfile": ""}, r"run: locustfile must name a file"),
        ({"userz": 3}, r"run\.userz is not a setting; known: baseline, duration_s"),
        ({"workers": 2, "expect_workers": 2}, r"run: expect_workers and workers exclude each"),
        ({"expect_workers": 1, "master_bind_port": 0}, r"run: master_bind_port must be a port"),
    ],
)
def test_bad_run_section_is_explained(run: dict[str, object], message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_config({"run": run})


def test_an_apps_table_replaces_sections_key_by_key_for_that_app_only() -> None:
    data = {
        "run": {"users": 30, "baseline": "main"},
        "absolute": {"overall": ["p95 < 500ms"], "names": {"GET /api/vods": ["p95 < 300ms"]}},
        "relative": {"overall": ["p95 +20%"]},
        "apps": {"flask": {"run": {"baseline": "flask"}, "absolute": {"names": {}}}},
    }
    app = parse_config(data, app="flask")
    assert (app.run.baseline, app.run.users, app.app) == ("flask", 30, "flask")
    assert app.absolute_names == {}  # its routes are other routes
    assert [a.text for a in app.absolute_overall] == ["p95 < 500ms"]  # kept: not given
    assert [r.text for r in app.relative_overall] == ["p95 +20%"]
    reference = parse_config(data)
    assert reference.run.baseline == "main" and list(reference.absolute_names) == ["GET /api/vods"]
    assert parse_config(data, app="other").run.baseline == "main"  # no table: the top level


def test_bad_apps_table_is_explained() -> None:
    with pytest.raises(InputError, match=r"apps\.flask\.pared is not a section; known: settings"):
        parse_config({"apps": {"flask": {"pared": {}}}})
    with pytest.raises(InputError, match=r"apps\.flask\.paired must be a table"):
        parse_config({"apps": {"flask": {"paired": 3}}})
    with pytest.raises(InputError, match=r"apps\.flask\.run must be a table"):
        parse_config({"apps": {"flask": {"run": 3}}})


def test_project_gate_config_has_the_real_apps_own_baseline_and_checks() -> None:
    reference = load_config(ROOT / "config" / "gate.toml")
    flask = load_config(ROOT / "config" / "gate.toml", "archivist-flask")
    assert reference.run.baseline == "main" and flask.run.baseline == "archivist-flask"
    assert "GET /api/vods" in reference.absolute_names
    assert not set(flask.absolute_names) & set(reference.absolute_names)
    assert load_config(ROOT / "config" / "gate.toml", "reference") == reference

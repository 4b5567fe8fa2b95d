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

"""The paired gate's statistics on small slice frames with known answers."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.config import parse_config
from analysis.gate import passed
from analysis.load import InputError
from analysis.paired import (
    BASELINE,
    CANDIDATE,
    pair_table,
    paired_checks,
    pairs_needed,
    slice_order,
)
from tests.analysis.conftest import without_named_checks

ROOT = Path(__file__).resolve().parents[2]
# Synthetic slices have no rows of the real workload: the config minus its named checks.
GATE_TOML = without_named_checks((ROOT / "config" / "gate.toml").read_text())
CONFIG = parse_config(tomllib.loads(GATE_TOML))
WINDOW_S = 10.0
N = 400  # requests per name and slice: enough for p95 and p99 (min_tail 3)


def slice_frame(pair: int, side: str, scale: dict[str, float], errors: int = 0) -> pd.DataFrame:
    """One slice: names "a" and "b" with latencies 10..20 ms times their scale."""
    rows = []
    base = np.linspace(10.0, 20.0, N)
    for name, factor in scale.items():
        lat = base * factor
        ok = np.ones(N, dtype=bool)
        ok[:errors] = False
        rows.append(
            pd.DataFrame(
                {
                    "t": np.linspace(0.0, WINDOW_S, N, endpoint=False),
                    "name": name,
                    "latency_ms": lat,
                    "corrected_ms": lat,
                    "has_intended": False,
                    "ok": ok,
                    "error": None,
                    "pair": pair,
                    "side": side,
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


def slices(
    machine: list[float],
    candidate: list[dict[str, float]] | None = None,
    candidate_errors: int | list[int] = 0,
) -> pd.DataFrame:
    """One pair per machine factor (how slow the box was then); the candidate's own
    factor per name on top of it (default: the same code, 1.0), and its failed requests
    per name in each slice (one count for all, or one per pair)."""
    frames = []
    errors = candidate_errors if isinstance(candidate_errors, list) else None
    for pair, m in enumerate(machine):
        own = (candidate or [{}] * len(machine))[pair]
        frames.append(slice_frame(pair, BASELINE, {"a": m, "b": m}))
        cand = {"a": m * own.get("a", 1.0), "b": m * own.get("b", 1.0)}
        failed = errors[pair] if errors is not None else int(candidate_errors)  # type: ignore[arg-type]
        frames.append(slice_frame(pair, CANDIDATE, cand, failed))
    return pd.concat(frames, ignore_index=True)


def status(checks: pd.DataFrame, check: str) -> str:
    return str(checks.set_index("check").loc[check, "status"])


def test_slices_alternate_so_that_drift_cancels() -> None:
    sides = [side[0] for _, side in slice_order(8)]
    assert "".join(sides) == "bccbbccb"
    assert [pair for pair, _ in slice_order(8)] == [0, 0, 1, 1, 2, 2, 3, 3]


def test_six_pairs_are_the_fewest_a_95_percent_sign_test_decides_on() -> None:
    assert pairs_needed(0.95) == 6
    assert pairs_needed(0.9) == 5


def test_a_machine_slowing_down_between_pairs_is_not_a_regression() -> None:
    # Same code on both sides; the box is 20x slower in pair 3, 5x in pair 5.
    frame = slices([1.0, 1.0, 20.0, 1.0, 5.0, 1.0])
    checks = paired_checks(frame, WINDOW_S, CONFIG)
    assert passed(checks), checks
    assert status(checks, "ALL: p95 +20%") == "pass"
    # What moved is the machine, not the code: the slices themselves differ 20-fold.
    p95 = pair_table(frame, WINDOW_S, CONFIG.paired)["candidate"]
    assert p95.max() / p95.min() == pytest.approx(20.0)


def test_a_candidate_slower_in_every_pair_fails_and_names_the_endpoint() -> None:
    frame = slices([1.0, 3.0, 1.0, 10.0, 1.0, 2.0], candidate=[{"b": 2.0}] * 6)
    checks = paired_checks(frame, WINDOW_S, CONFIG)
    assert not passed(checks)
    assert status(checks, "b: p95 +25%") == "fail"
    assert status(checks, "a: p95 +25%") == "pass"
    row = checks.set_index("check").loc["b: p95 +25%"]
    assert row["change"] == pytest.approx(1.0)
    assert "worse in 6 of 6 pairs" in row["detail"]


def test_slower_in_only_some_pairs_is_not_consistent_and_passes() -> None:
    own = [{"b": 2.0}] * 4 + [{"b": 0.9}] * 2  # median +100%, but 2 of 6 pairs faster
    checks = paired_checks(slices([1.0] * 6, candidate=own), WINDOW_S, CONFIG)
    assert status(checks, "b: p95 +25%") == "pass"
    assert "not significant" in checks.set_index("check").loc["b: p95 +25%", "detail"]


def test_too_few_pairs_skip_instead_of_deciding() -> None:
    checks = paired_checks(slices([1.0] * 5, candidate=[{"b": 2.0}] * 5), WINDOW_S, CONFIG)
    row = checks.set_index("check").loc["b: p95 +25%"]
    assert row["status"] == "skip"
    assert "5 of 5 pairs usable" in row["detail"] and "needs 6" in row["detail"]


def test_a_change_of_a_few_ms_never_fails_whatever_its_ratio() -> None:
    frame = slices([0.05] * 6, candidate=[{"b": 1.5}] * 6)  # 0.5-1 ms -> 0.75-1.5 ms, +50%
    assert CONFIG.paired.min_effect_ms == 1.0  # [paired]'s, in place of [settings]' 5 ms
    assert passed(paired_checks(frame, WINDOW_S, CONFIG))
    strict = dataclasses.replace(
        CONFIG, paired=dataclasses.replace(CONFIG.paired, min_effect_ms=0.0)
    )
    assert status(paired_checks(frame, WINDOW_S, strict), "b: p95 +25%") == "fail"


def test_errors_in_every_candidate_slice_fail_the_error_rate_check() -> None:
    frame = slices([1.0] * 6, candidate_errors=20)  # 5% of each name's requests
    checks = paired_checks(frame, WINDOW_S, CONFIG)
    assert status(checks, "ALL: error_rate +1pp") == "fail"
    assert status(checks, "ALL: p95 +20%") == "pass"


def test_rare_errors_that_leave_some_pairs_tied_still_fail() -> None:
    # one call in 20 on average, but two slices happened to have none: the median of the
    # per-pair changes has two pairs at 0 pp, the pooled errors and 7 of 7 pairs do not
    frame = slices([1.0] * 9, candidate_errors=[40, 0, 30, 20, 0, 20, 30, 20, 40])
    checks = paired_checks(frame, WINDOW_S, CONFIG).set_index("check")
    assert checks.loc["a: error_rate +1pp", "status"] == "fail"
    detail = str(checks.loc["a: error_rate +1pp", "detail"])
    assert "errors 200 of 3600 against 0 of 3600" in detail
    assert "worse in 7 of the 7 pairs that differ" in detail


def test_a_burst_of_errors_in_one_slice_is_not_a_regression() -> None:
    frame = slices([1.0] * 9, candidate_errors=[0, 0, 0, 0, 200, 0, 0, 0, 0])
    checks = paired_checks(frame, WINDOW_S, CONFIG).set_index("check")
    assert checks.loc["a: error_rate +1pp", "status"] == "pass"
    assert "a burst" in str(checks.loc["a: error_rate +1pp", "detail"])


def test_paired_limits_replace_the_relative_ones_for_a_paired_gate() -> None:
    data = tomllib.loads(GATE_TOML)
    data["paired"] |= {"per_name": ["p95 +10%", "error_rate +2pp"], "min_effect_ms": 1.0}
    config = parse_config(data)
    frame = slices([1.0] * 6, candidate=[{"b": 1.15}] * 6)  # p95 19.5 -> 22.4 ms: +2.9 ms
    checks = paired_checks(frame, WINDOW_S, config)
    assert status(checks, "b: p95 +10%") == "fail"
    assert not any(str(c).endswith("p95 +25%") for c in checks["check"])
    # the same frame under the top-level [relative] limits and 5 ms min_effect_ms passes
    assert passed(paired_checks(frame, WINDOW_S, CONFIG))


def test_an_endpoint_the_candidate_never_calls_fails() -> None:
    frame = slices([1.0] * 6)
    frame = frame[~((frame["side"] == CANDIDATE) & (frame["name"] == "b"))]
    checks = paired_checks(frame, WINDOW_S, CONFIG)
    assert status(checks, "b: present") == "fail"


def test_pair_table_shows_each_pair_and_who_went_first() -> None:
    table = pair_table(slices([1.0, 2.0], candidate=[{"a": 2.0, "b": 2.0}] * 2), WINDOW_S,
                       CONFIG.paired)  # fmt: skip
    assert table["first"].tolist() == [BASELINE, CANDIDATE]
    assert table["change"].tolist() == pytest.approx([1.0, 1.0])
    assert table["candidate"].iloc[1] == pytest.approx(2 * table["candidate"].iloc[0])


@pytest.mark.parametrize(
    ("paired", "message"),
    [
        ({"slice": 10}, "paired.slice is not a setting; known:"),
        ({"slices": 7}, "slices must be an even number"),
        ({"slice_s": 2.0, "warmup_s": 3.0}, "slice_s must be longer than warmup_s"),
        ({"users": 0}, "users >= 1"),
        ({"min_effect_ms": -1.0}, "min_effect_ms must be >= 0"),
        ({"per_name": ["p95 +"]}, "paired.per_name"),
    ],
)
def test_paired_settings_are_checked_where_they_are_read(
    paired: dict[str, object], message: str
) -> None:
    with pytest.raises(InputError, match=message):
        parse_config({"paired": paired}, "gate.toml")


def test_each_side_pools_its_slices_end_to_end_and_the_report_shows_both() -> None:
    from analysis.html import render_report
    from analysis.paired import side_run
    from analysis.stats import summarise

    data = slices([1.0, 1.0, 1.0], [{"a": 2.0}] * 3)
    cand, base = side_run(data, WINDOW_S, CANDIDATE), side_run(data, WINDOW_S, BASELINE)
    assert cand.duration_s == base.duration_s == 3 * WINDOW_S
    # pair k's counted window starts at k * WINDOW_S: no two slices share a second
    assert cand.samples["t"].min() == 0.0 and cand.samples["t"].max() < 3 * WINDOW_S
    assert sorted(cand.counts["second"].unique()) == list(range(30))
    checks = paired_checks(data, WINDOW_S, CONFIG)
    html = render_report(cand, summarise(cand.samples, cand.duration_s), checks, base)
    assert "<html" in html.lower() and "p95 +20%" in html

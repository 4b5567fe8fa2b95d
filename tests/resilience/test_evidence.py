"""Enough evidence per check: sample counts, skips below the target, and relative p95
checks decided on their bootstrap interval, on synthetic data whose answers are known."""

from __future__ import annotations

import numpy as np
import pandas as pd

from experiments.evidence import beyond, p95_ratio_interval, too_few
from experiments.experiment import Hypothesis, Tolerance
from experiments.scorecard import render_report
from experiments.verdict import Stats, Window, check_phase, evaluate, phase_sample
from experiments.written_values import parse_bound

T0 = 1_000_000.0
ROUTE = ("GET", "/api/browse")


def frame(
    before_ms: np.ndarray, during_ms: np.ndarray, slow_route_n: int = 0
) -> tuple[pd.DataFrame, Window]:
    """`before_ms` spread over 0-60 s, `during_ms` over the fault window 60-90 s; and
    `slow_route_n` requests of a second route in each phase."""
    rows = [(T0 + 60 * i / len(before_ms), ms, *ROUTE) for i, ms in enumerate(before_ms)]
    rows += [(T0 + 60 + 30 * i / len(during_ms), ms, *ROUTE) for i, ms in enumerate(during_ms)]
    for start, span in ((0, 60), (60, 30)):
        rows += [
            (T0 + start + span * i / max(slow_route_n, 1), 50.0, "GET", "/api/queue")
            for i in range(slow_route_n)
        ]
    df = pd.DataFrame(rows, columns=["t_start", "ms", "type", "name"])
    df["latency_us"] = (df.pop("ms") * 1000).astype(int)
    df["ok"] = True
    return df.sort_values("t_start").reset_index(drop=True), Window(T0 + 60, T0 + 90, "postgres")


def hypothesis(min_samples: int, during_p95: str = "< 150%") -> Hypothesis:
    return Hypothesis(
        before=Tolerance(p95_ms=parse_bound("< 5000", "p95_ms")),
        during=Tolerance(
            error_rate=parse_bound("< 5%", "error_rate"), p95_ms=parse_bound(during_p95, "p95_ms")
        ),
        after=Tolerance(),
        recovers_within=5,
        sustained=5,
        min_samples=min_samples,
    )


def during_checks(df: pd.DataFrame, window: Window, h: Hypothesis, judged=()) -> dict:
    verdict = evaluate(df, [window], h, T0, T0 + 200, 0.0, judged=judged)
    phase = next(p for p in verdict.phases if p.phase == "during")
    return {c.metric: c for c in phase.checks} | {"thin": phase.thin}


def lognormal(rng: np.random.Generator, median_ms: float, n: int) -> np.ndarray:
    return median_ms * rng.lognormal(0.0, 0.6, n)


def test_a_check_with_fewer_samples_than_the_target_is_skipped_with_its_count() -> None:
    rng = np.random.default_rng(1)
    df, window = frame(lognormal(rng, 100, 300), lognormal(rng, 900, 20))
    checks = during_checks(df, window, hypothesis(min_samples=40))
    for metric in ("p95_ms", "error_rate"):
        assert checks[metric].ok and checks[metric].samples == 20
        assert checks[metric].skipped == "too few samples (target 40): this phase 20"
    assert checks["thin"] == {"GET /api/browse": 20}
    decided = during_checks(df, window, hypothesis(min_samples=10))  # 9x slower: seen
    assert not decided["p95_ms"].ok and not decided["p95_ms"].skipped


def test_a_judged_route_under_the_target_skips_the_p95_check_and_is_named() -> None:
    rng = np.random.default_rng(2)
    df, window = frame(lognormal(rng, 100, 300), lognormal(rng, 100, 200), slow_route_n=7)
    judged = ("GET /api/browse", "GET /api/queue")
    checks = during_checks(df, window, hypothesis(min_samples=40), judged)
    assert checks["p95_ms"].skipped == "too few samples (target 40): GET /api/queue 7"
    assert not checks["error_rate"].skipped  # of all 207 requests: decided
    assert checks["error_rate"].samples == 207


def test_a_relative_p95_fails_when_the_change_is_beyond_the_bound_and_the_noise() -> None:
    rng = np.random.default_rng(3)
    before = lognormal(rng, 100, 400)
    df, window = frame(before, lognormal(rng, 300, 200))
    slow = during_checks(df, window, hypothesis(min_samples=40))["p95_ms"]
    assert not slow.ok and slow.samples == 200
    df, window = frame(before, lognormal(rng, 110, 200))
    same = during_checks(df, window, hypothesis(min_samples=40))["p95_ms"]
    assert same.ok and "smallest change it could see:" in same.detail
    assert "percentile bootstrap, 1000 resamples" in same.detail


def test_relative_p95_verdicts_agree_across_reruns_where_the_point_value_flips() -> None:
    """Twenty reruns of the same code: p95 truly 1.25x before, bound 1.5x, 60 requests a
    phase. The point value crosses the bound in some reruns (a flipping verdict); the
    interval rule gives the same verdict in every one."""
    interval_ok, point_ok = [], []
    for seed in range(20):
        rng = np.random.default_rng(100 + seed)
        before, during = lognormal(rng, 100, 60), lognormal(rng, 125, 60)
        df, window = frame(before, during)
        check = during_checks(df, window, hypothesis(min_samples=40))["p95_ms"]
        interval_ok.append(check.ok)
        point_ok.append(np.percentile(during, 95) < 1.5 * np.percentile(before, 95))
    assert len(set(point_ok)) == 2, "the synthetic noise must be able to flip a point verdict"
    assert set(interval_ok) == {True}


def test_the_interval_holds_the_true_ratio_narrows_with_samples_and_repeats() -> None:
    rng = np.random.default_rng(4)
    small = p95_ratio_interval(lognormal(rng, 100, 50), lognormal(rng, 200, 50))
    large = p95_ratio_interval(lognormal(rng, 100, 2000), lognormal(rng, 200, 2000))
    assert large.low < 2.0 < large.high
    assert large.smallest_change < small.smallest_change
    a, b = lognormal(rng, 100, 80), lognormal(rng, 100, 80)
    assert p95_ratio_interval(a, b) == p95_ratio_interval(a, b)  # a fixed seed: same verdict


def test_beyond_needs_the_whole_interval_past_the_limit() -> None:
    from experiments.evidence import RatioInterval

    assert beyond(RatioInterval(2.0, 1.6, 2.4), "<", 1.5)
    assert not beyond(RatioInterval(1.6, 1.3, 1.9), "<", 1.5)
    assert beyond(RatioInterval(0.3, 0.2, 0.4), ">", 0.5)
    assert too_few({"a": 50, "b": 3, "c": 12}, 40) == {"b": 3, "c": 12}


def test_check_phase_without_samples_keeps_the_point_rule_for_recovery_windows() -> None:
    stats = Stats(5, 0, 0.0, 0.0, 200.0, 1.0, 5.0)
    before = Stats(100, 0, 0.0, 0.0, 100.0, 20.0, 5.0)
    (check,) = check_phase(stats, Tolerance(p95_ms=parse_bound("< 150%", "p95_ms")), before)
    assert not check.ok and check.samples == 0 and not check.skipped


def test_the_printed_table_shows_each_checks_count_skip_and_interval() -> None:
    rng = np.random.default_rng(5)
    df, window = frame(lognormal(rng, 100, 300), lognormal(rng, 105, 20))
    verdict = evaluate(df, [window], hypothesis(40), T0, T0 + 200, 0.0)
    report = {"experiment": "x", "title": "t", "verdict": verdict.to_json(), "audit": None}
    text = render_report(report)
    assert "p95_ms < 150% of before SKIPPED (n=20)" in text
    assert "too few samples (target 40): this phase 20; 0.83x before (95% CI" in text
    assert "routes under the sample target in this phase: GET /api/browse 20" in text
    verdict = evaluate(df, [window], hypothesis(10), T0, T0 + 200, 0.0)
    text = render_report({**report, "verdict": verdict.to_json()})
    assert "p95_ms < 150% of before ok (n=20)" in text and "smallest change it could see" in text


def test_phase_sample_counts_timed_routes_apart() -> None:
    rng = np.random.default_rng(6)
    df, _ = frame(lognormal(rng, 100, 10), lognormal(rng, 100, 10), slow_route_n=4)
    df["timed"] = df["name"] == "/api/queue"
    sample = phase_sample(df, T0, T0 + 60)
    assert sample.timed_routes == {"GET /api/queue": 4}
    assert sample.routes == {"GET /api/browse": 10, "GET /api/queue": 4}


def test_an_absolute_p95_fails_only_when_its_interval_lies_beyond_the_bound() -> None:
    rng = np.random.default_rng(8)
    h = hypothesis(min_samples=40, during_p95="< 150%")
    h = Hypothesis(**{**h.__dict__, "during": Tolerance(p95_ms=parse_bound("< 250", "p95_ms"))})
    before = lognormal(rng, 100, 300)
    near = lognormal(rng, 100, 60)  # p95 ~270 ms of 60 requests: noise straddles 250
    df, window = frame(before, near)
    check = during_checks(df, window, h)["p95_ms"]
    assert check.value > 250 and check.ok and "95% CI" in check.detail
    # passed on the benefit of the doubt, and says so: not "within the bound"
    assert check.undecided and check.detail.startswith("undecided: the value is beyond")
    df, window = frame(before, lognormal(rng, 400, 200))
    assert not during_checks(df, window, h)["p95_ms"].ok
    df, window = frame(before, lognormal(rng, 50, 200))
    clear = during_checks(df, window, h)["p95_ms"]
    assert clear.ok and not clear.undecided

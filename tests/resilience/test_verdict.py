"""Verdicts and recovery times on small synthetic frames whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from experiments.experiment import Hypothesis, Tolerance
from experiments.verdict import Window, check_phase, episodes, evaluate, recovery_time, window_stats
from experiments.written_values import parse_bound

T0 = 1_000_000.0


def frame(rows: list[tuple[float, float, bool]]) -> pd.DataFrame:
    """(seconds after T0, latency ms, ok) -> the capture's columns."""
    return pd.DataFrame(
        {
            "t_start": [T0 + t for t, _, _ in rows],
            "latency_us": [int(ms * 1000) for _, ms, _ in rows],
            "ok": [ok for _, _, ok in rows],
        }
    )


def steady(start: float, end: float, ms: float, ok: bool, per_s: int = 10) -> list:
    return [(t, ms, ok) for t in np.arange(start, end, 1 / per_s)]


def tol(error: str | None = None, p95: str | None = None, rate: str | None = None) -> Tolerance:
    return Tolerance(
        error_rate=parse_bound(error, "error_rate") if error else None,
        p95_ms=parse_bound(p95, "p95_ms") if p95 else None,
        throughput=parse_bound(rate, "throughput") if rate else None,
    )


def test_window_stats_counts_errors_p95_and_rate() -> None:
    df = frame([(i, float(i + 1), i % 4 != 0) for i in range(20)])  # latencies 1..20 ms
    stats = window_stats(df, T0, T0 + 20)
    assert stats.requests == 20 and stats.errors == 5
    assert stats.error_rate == pytest.approx(0.25)
    assert stats.p95_ms == pytest.approx(np.percentile(np.arange(1, 21), 95))
    assert stats.throughput == pytest.approx(1.0)
    empty = window_stats(df, T0 + 100, T0 + 110)
    assert empty.requests == 0 and math.isnan(empty.error_rate)


def test_close_windows_merge_into_one_episode() -> None:
    flaps = [Window(T0 + s, T0 + s + 4, "cablecast") for s in (10, 18, 26)]
    far = Window(T0 + 60, T0 + 65, "redis")
    merged = episodes([far, *flaps], merge_gap=5)
    assert [(e.start - T0, e.end - T0, len(e.windows)) for e in merged] == [
        (10, 30, 3),
        (60, 65, 1),
    ]


def test_recovery_is_the_first_sustained_window_within_tolerance() -> None:
    # errors until 3 s after the fault ends at 20 s, then healthy
    df = frame(steady(0, 23, 10, False) + steady(23, 40, 10, True))
    after = tol("< 1%", "< 100")
    assert recovery_time(df, T0 + 20, T0 + 40, after, sustained=5) == pytest.approx(3.0)
    # slow (not failing) answers also count as not recovered
    df = frame(steady(0, 26, 900, True) + steady(26, 40, 10, True))
    assert recovery_time(df, T0 + 20, T0 + 40, after, sustained=5) == pytest.approx(6.0)
    # never healthy within the horizon
    df = frame(steady(0, 40, 10, False))
    assert recovery_time(df, T0 + 20, T0 + 40, after, sustained=5) is None


def hypothesis(recovers_within: float = 10) -> Hypothesis:
    steady_state = tol("< 1%", "< 100")
    return Hypothesis(
        before=steady_state,
        during=tol("<= 100%", "< 2000", "> 20%"),
        after=steady_state,
        recovers_within=recovers_within,
        sustained=5,
    )


def test_evaluate_passes_a_service_that_degrades_and_recovers() -> None:
    rows = steady(0, 20, 10, True) + steady(20, 30, 50, False, per_s=5) + steady(30, 32, 10, False)
    rows += steady(32, 60, 10, True)
    verdict = evaluate(
        frame(rows),
        [Window(T0 + 20, T0 + 30, "postgres", "postgres down")],
        hypothesis(),
        T0,
        T0 + 61,
        warmup=5,
    )
    assert [p.phase for p in verdict.phases] == ["before", "during", "after"]
    before, during, after = verdict.phases
    assert (before.start, before.end) == (T0 + 5, T0 + 20)
    assert during.stats.error_rate == 1.0 and during.ok  # allowed during
    assert after.start == T0 + 40 and after.ok
    assert verdict.recoveries[0].seconds == pytest.approx(2.0)
    assert verdict.ok
    assert verdict.to_json()["ok"] is True


def test_evaluate_fails_slow_recovery_and_a_throughput_collapse() -> None:
    rows = steady(0, 20, 10, True) + steady(20, 30, 50, False, per_s=1)  # 10% of before
    rows += steady(30, 45, 10, False) + steady(45, 60, 10, True)
    verdict = evaluate(
        frame(rows),
        [Window(T0 + 20, T0 + 30, "postgres", "postgres down")],
        hypothesis(recovers_within=10),
        T0,
        T0 + 61,
        warmup=5,
    )
    during = verdict.phases[1]
    assert [c.metric for c in during.checks if not c.ok] == ["throughput"]
    assert verdict.recoveries[0].seconds == pytest.approx(15.0)
    assert not verdict.recoveries[0].ok
    assert not verdict.ok


def test_other_errors_counts_failures_that_are_not_503s() -> None:
    df = frame([(0.1 * i, 10, i >= 5) for i in range(10)])
    df["error"] = [
        "CatchResponseError: status 503, expected 200 {...}",
        "CatchResponseError: status 422, expected 200 {...}",  # judged: a proper answer
        "CatchResponseError: no answer: timed out",
        "CatchResponseError: status 500, expected 200 {...}",
        "CatchResponseError: status 503, expected 201/200 {...}",
        *[None] * 5,
    ]
    stats = window_stats(df, T0, T0 + 1)
    assert stats.error_rate == pytest.approx(0.5)
    assert stats.other_errors == pytest.approx(0.2)
    bound = Tolerance(other_errors=parse_bound("< 1%", "other_errors"))
    [check] = check_phase(stats, bound, None)
    assert check.metric == "other_errors" and not check.ok


def test_a_fault_with_its_own_during_tolerance_is_judged_by_it() -> None:
    rows = steady(0, 20, 10, True) + steady(20, 30, 50, False) + steady(30, 60, 10, True)
    window = Window(T0 + 20, T0 + 30, "postgres", "postgres down")
    strict = {"postgres down": tol("< 5%")}
    verdict = evaluate(frame(rows), [window], hypothesis(), T0, T0 + 61, 5, strict)
    assert [c.bound for c in verdict.phases[1].checks] == ["< 5%"]
    assert not verdict.phases[1].ok
    assert evaluate(frame(rows), [window], hypothesis(), T0, T0 + 61, 5).phases[1].ok


def test_a_request_the_next_fault_caught_in_flight_is_not_charged_to_steady_state() -> None:
    rows = steady(0, 20, 10, True)
    rows.append((19.5, 1500, False))  # started before the fault, failed because of it
    rows += steady(20, 30, 50, False) + steady(30, 60, 10, True)
    window = Window(T0 + 20, T0 + 30, "postgres", "postgres down")
    verdict = evaluate(frame(rows), [window], hypothesis(), T0, T0 + 61, 5)
    assert verdict.phases[0].stats.errors == 0 and verdict.phases[0].ok


def test_a_fault_on_a_link_that_carried_nothing_gets_no_verdict() -> None:
    """The service looked fine during the fault because nothing it did crossed the link."""
    rows = steady(0, 60, 10, True)
    idle = Window(T0 + 20, T0 + 30, "cablecast", "latency latency=500 on cablecast", "latency", 0)
    verdict = evaluate(frame(rows), [idle], hypothesis(), T0, T0 + 61, warmup=5)
    assert all(p.ok for p in verdict.phases)  # every phase "passed" ...
    assert not verdict.ok and verdict.word == "FAULT HIT NOTHING"  # ... but tested nothing
    assert verdict.hit_nothing == (
        "latency latency=500 on cablecast: the cablecast link carried no byte during its "
        "10.0s window",
    )
    assert verdict.to_json()["word"] == "FAULT HIT NOTHING"


def test_traffic_or_no_measurement_keeps_the_verdict() -> None:
    rows = steady(0, 60, 10, True)
    used = Window(T0 + 20, T0 + 30, "postgres", "latency on postgres", "latency", 4096)
    unmeasured = Window(T0 + 20, T0 + 30, "redis", "latency on redis", "latency", None)
    verdict = evaluate(frame(rows), [used, unmeasured], hypothesis(), T0, T0 + 61, warmup=5)
    assert verdict.hit_nothing == () and verdict.word == "PASS"


def test_a_link_taken_down_hit_nothing_only_if_the_load_never_used_it() -> None:
    """A link that is down carries no byte by design: the whole load's traffic decides."""
    rows = steady(0, 60, 10, True)
    down = Window(T0 + 20, T0 + 30, "cablecast", "cablecast down", "down", 0)
    used = evaluate(frame(rows), [down], hypothesis(), T0, T0 + 61, 5, None, {"cablecast": 10})
    assert used.hit_nothing == ()
    unused = evaluate(frame(rows), [down], hypothesis(), T0, T0 + 61, 5, None, {"cablecast": 0})
    assert unused.hit_nothing == (
        "cablecast down: the cablecast link carried no byte during the whole load",
    )


def test_window_bytes_are_read_from_faults_jsonl() -> None:
    line = {"start": 1.0, "end": 2.0, "link": "redis", "toxic": "latency", "what": "w"}
    assert Window.from_json({**line, "bytes": {"upstream": 3, "downstream": 4}}).bytes == 7
    assert Window.from_json({**line, "bytes": None}).bytes is None
    assert Window.from_json(line).bytes is None  # a window recorded before bytes were

"""What a real app does wrong under a fault, and what it always does wrong, in the verdict.

The route profile's [defects] (answers the app always gives) are counted apart from the
fault's errors; its [[defects_during]] (answers the app gives only while a link is
faulted) still count against the hypothesis but are named as the app's defects; and
`p95_routes` measures the latency of the routes a fault is about.
"""

from __future__ import annotations

import pandas as pd

from experiments.experiment import Hypothesis, Tolerance
from experiments.verdict import OutageDefect, Window, evaluate, window_stats
from experiments.written_values import parse_bound

T0 = 1_000_000.0
HTML_500 = "CatchResponseError: status 500, expected 200 <!doctype html>"
STEADY_DEFECT = "KnownDefect: known defect of the app (sync_status): answers 500 every time"


def requests(rows: list[tuple[float, str, str, float, bool, str]]) -> pd.DataFrame:
    """(seconds after T0, method, name, latency ms, ok, error) -> the capture's columns."""
    return pd.DataFrame(
        {
            "t_start": [T0 + r[0] for r in rows],
            "type": [r[1] for r in rows],
            "name": [r[2] for r in rows],
            "latency_us": [int(r[3] * 1000) for r in rows],
            "ok": [r[4] for r in rows],
            "error": [r[5] or None for r in rows],
        }
    )


def every(start: float, end: float, method: str, name: str, ms: float, ok: bool, error: str = ""):
    return [(start + i * 0.25, method, name, ms, ok, error) for i in range(int((end - start) * 4))]


def tolerance(error: str, other: str, p95: str) -> Tolerance:
    return Tolerance(
        error_rate=parse_bound(error, "error_rate"),
        other_errors=parse_bound(other, "other_errors"),
        p95_ms=parse_bound(p95, "p95_ms"),
    )


HYPOTHESIS = Hypothesis(
    before=tolerance("< 5%", "< 5%", "< 500"),
    during=tolerance("<= 100%", "< 5%", "< 500"),
    after=tolerance("< 5%", "< 5%", "< 500"),
    recovers_within=5,
    sustained=5,
)
REDIS_DOWN = Window(T0 + 20, T0 + 30, "redis", "redis down", "down", None)
LIMITER = OutageDefect(
    link="redis",
    toxic="down",
    routes=(("GET", "/api/browse"), ("GET", "/api/health")),
    status=(500,),
    ok_status=(200,),
    why="the limiter answers HTML 500s without Redis",
)
HEALTH_BLIND = OutageDefect(
    link="postgres",
    toxic="down",
    routes=(("GET", "/api/health"),),
    status=(200,),
    ok_status=(200,),
    why="health answers 200 without its database",
)


def test_steady_known_defects_are_counted_apart_not_as_the_faults_errors() -> None:
    frame = requests(
        every(0, 10, "GET", "/api/browse", 50, True)
        + every(0, 10, "GET", "/api/vod/sync-status", 50, False, STEADY_DEFECT)
    )
    stats = window_stats(frame.sort_values("t_start"), T0, T0 + 10)
    assert stats.known_defects == 40
    assert stats.requests == 40 and stats.errors == 0 and stats.error_rate == 0


def test_html_500s_under_redis_down_fail_the_verdict_and_are_named_as_the_apps_defect() -> None:
    frame = requests(
        every(5, 20, "GET", "/api/browse", 50, True)
        + every(20, 30, "GET", "/api/browse", 30, False, HTML_500)
        + every(20, 30, "GET", "/api/health", 30, False, HTML_500)
        + every(30, 50, "GET", "/api/browse", 50, True)
    )
    verdict = evaluate(
        frame, [REDIS_DOWN], HYPOTHESIS, T0, T0 + 51, 5, defects=(LIMITER, HEALTH_BLIND)
    )
    during = next(p for p in verdict.phases if p.phase == "during")
    assert verdict.word == "FAIL"
    assert [c.metric for c in during.checks if not c.ok] == ["other_errors"]
    assert len(during.defects) == 1  # the postgres one does not apply to a redis fault
    seen = during.defects[0]
    assert seen.why == LIMITER.why and seen.link == "redis" and seen.answers == 80
    assert seen.routes == ("GET /api/browse", "GET /api/health")
    assert verdict.to_json()["phases"][1]["defects"][0]["answers"] == 80


def test_a_health_check_that_stays_green_while_its_database_is_down_is_named() -> None:
    postgres_down = Window(T0 + 20, T0 + 30, "postgres", "postgres down", "down", None)
    frame = requests(
        every(5, 50, "GET", "/api/browse", 50, True) + every(5, 50, "GET", "/api/health", 50, True)
    )
    verdict = evaluate(frame, [postgres_down], HYPOTHESIS, T0, T0 + 51, 5, defects=(HEALTH_BLIND,))
    during = next(p for p in verdict.phases if p.phase == "during")
    assert [(d.answers, d.routes) for d in during.defects] == [(40, ("GET /api/health",))]
    before = next(p for p in verdict.phases if p.phase == "before")
    assert before.defects == ()  # only while the fault is on


def test_p95_routes_measure_the_database_routes_not_a_slow_health_check() -> None:
    frame = requests(
        every(0, 10, "GET", "/api/browse", 100, True)
        + every(0, 10, "GET", "/api/health", 3000, True)
    )
    frame = frame.sort_values("t_start").reset_index(drop=True)
    assert window_stats(frame, T0, T0 + 10).p95_ms == 3000
    frame["timed"] = frame["name"] == "/api/browse"
    stats = window_stats(frame, T0, T0 + 10)
    assert stats.p95_ms == 100 and stats.requests == 80  # every request still counts


def test_a_relative_p95_bound_is_judged_against_the_before_phase() -> None:
    slower = Hypothesis(
        before=tolerance("< 5%", "< 5%", "< 5000"),
        during=Tolerance(p95_ms=parse_bound("< 150%", "p95_ms")),
        after=tolerance("< 5%", "< 5%", "< 5000"),
        recovers_within=5,
        sustained=5,
    )
    slow_db = Window(T0 + 20, T0 + 30, "postgres", "latency on postgres", "latency", 1000)
    frame = requests(
        every(5, 20, "GET", "/api/upload", 200, True)
        + every(20, 30, "GET", "/api/upload", 800, True)
        + every(30, 50, "GET", "/api/upload", 200, True)
    )
    verdict = evaluate(frame, [slow_db], slower, T0, T0 + 51, 5)
    during = next(p for p in verdict.phases if p.phase == "during")
    assert [(c.metric, c.bound, c.ok) for c in during.checks] == [
        ("p95_ms", "< 150% of before", False)
    ]
    assert verdict.word == "FAIL"
    frame = requests(every(5, 50, "GET", "/api/upload", 200, True))
    assert evaluate(frame, [slow_db], slower, T0, T0 + 51, 5).word == "PASS"

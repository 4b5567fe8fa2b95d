"""Bootstrap comparison and the regression decision."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.compare import bootstrap_quantiles, compare_runs
from analysis.config import Settings, parse_config, parse_relative
from analysis.gate import decide, evaluate, passed
from analysis.load import Run, load_run, per_second_counts, to_samples
from analysis.synthetic import synthetic_requests

from .conftest import make_run, make_samples

SETTINGS = Settings(resamples=400, min_samples=50, min_blocks=5)
GATE = parse_config(
    {
        "settings": {"resamples": 400, "warmup_s": 0.0},
        "relative": {"overall": ["p95 +20%"], "per_name": ["p95 +25%", "error_rate +1pp"]},
    }
)


def _run(seed: int, slow: dict[str, float] | None = None, n: int = 12_000) -> Run:
    req = synthetic_requests(n, names=4, duration_s=60, seed=seed, slow=slow)
    s = to_samples(req, t0=float(req["t_start"].min()))
    return Run(samples=s, counts=per_second_counts(s), duration_s=60.0)


@pytest.mark.parametrize(
    ("change", "low", "high", "status", "why"),
    [
        (0.50, 0.40, 0.60, "fail", "regression"),
        (0.05, 0.02, 0.08, "pass", "significant but within"),  # significant but small
        (0.50, -0.10, 1.10, "pass", "not significant"),  # large but not significant
        (0.01, -0.02, 0.04, "pass", "no significant change"),
        (-0.50, -0.60, -0.40, "pass", "no significant change"),  # faster is fine
        (float("nan"), float("nan"), float("nan"), "skip", "not enough data"),
    ],
)
def test_decide_latency(change: float, low: float, high: float, status: str, why: str) -> None:
    got, reason = decide(change, low, high, parse_relative("p95 +20%"))
    assert got == status and why in reason


def test_decide_throughput_drop_is_worse() -> None:
    rule = parse_relative("throughput -15%")
    assert decide(-0.30, -0.35, -0.25, rule)[0] == "fail"
    assert decide(0.30, 0.25, 0.35, rule)[0] == "pass"


def test_decide_error_rate_in_points() -> None:
    rule = parse_relative("error_rate +1pp")
    assert decide(0.02, 0.015, 0.025, rule)[0] == "fail"
    assert decide(0.005, 0.003, 0.007, rule)[0] == "pass"


def test_bootstrap_quantiles_centre_on_the_exact_value() -> None:
    rng = np.random.default_rng(3)
    lat = rng.lognormal(3.0, 0.5, 20_000)
    t = np.sort(rng.uniform(0, 100, 20_000))
    reps = bootstrap_quantiles(t, lat, (0.5, 0.95), 1.0, 300, np.random.default_rng(1))
    exact = np.quantile(lat, [0.5, 0.95])
    assert np.median(reps, axis=0) == pytest.approx(exact, rel=0.01)


def test_compare_reports_known_change_and_identity() -> None:
    s = make_samples([10.0] * 400, t=np.linspace(0, 40, 400, endpoint=False).tolist())
    base = make_run(s, 40.0)
    cur = make_run(
        s.assign(latency_ms=s["latency_ms"] * 2, corrected_ms=s["corrected_ms"] * 2), 40.0
    )
    changes = compare_runs(base, cur, SETTINGS).set_index(["name", "metric"])
    assert changes.loc[("a", "p95"), "change"] == pytest.approx(1.0)
    assert changes.loc[("a", "throughput"), "change"] == pytest.approx(0.0)
    same = compare_runs(base, base, SETTINGS).set_index(["name", "metric"])
    assert same.loc[("ALL", "p50"), "change"] == 0.0


def test_too_few_samples_skips_instead_of_deciding() -> None:
    s = make_samples([10.0] * 20)
    checks = evaluate(make_run(s, 20.0), GATE, make_run(s, 20.0))
    assert set(checks["status"]) == {"skip"}
    assert passed(checks)


@pytest.mark.parametrize("seed", range(5))
def test_gate_fails_on_2x_slowdown_of_one_endpoint(seed: int) -> None:
    checks = evaluate(_run(100 + seed, {"GET /api/1": 2.0}), GATE, _run(seed))
    failed = checks[checks["status"] == "fail"]
    assert not passed(checks)
    assert set(failed["scope"]) == {"GET /api/1"}


@pytest.mark.parametrize("seed", range(5))
def test_gate_passes_without_change(seed: int) -> None:
    checks = evaluate(_run(200 + seed), GATE, _run(seed))
    assert passed(checks), checks[checks["status"] == "fail"]


def test_missing_endpoint_fails_the_gate() -> None:
    base = _run(1)
    cur_s = base.samples[base.samples["name"] != "GET /api/0"]
    cur = Run(samples=cur_s, counts=per_second_counts(cur_s), duration_s=60.0)
    checks = evaluate(cur, GATE, base)
    assert "GET /api/0: present" in set(checks.loc[checks["status"] == "fail", "check"])


def test_load_run_uses_meta_start(synthetic_pair) -> None:
    base, _ = synthetic_pair
    run = load_run(base)
    assert run.samples["t"].min() >= 0.0
    assert len(run.samples) == 20_000


def test_high_percentile_without_enough_tail_is_skipped() -> None:
    # 1000 requests per run: p95 rests on 50 requests above it, p99 on only 10 (< min_tail 20).
    s = make_samples(list(np.linspace(1, 100, 1000)), t=list(np.linspace(0, 50, 1000)))
    rows = compare_runs(make_run(s, 50.0), make_run(s, 50.0), SETTINGS).set_index("metric")
    ours = rows[rows["name"] == "a"]
    assert bool(ours.loc["p95", "enough"]) and not bool(ours.loc["p99", "enough"])
    assert np.isnan(ours.loc["p99", "ci_low"])


def test_decide_ignores_large_ratio_of_a_tiny_latency_change() -> None:
    rule = parse_relative("p95 +20%")
    # 4 ms -> 6 ms is +50% and significant, but only 2 ms: scheduler noise, not a regression.
    status, why = decide(0.5, 0.3, 0.7, rule, delta_ms=2.0, min_effect_ms=5.0)
    assert status == "pass" and "less than 5 ms" in why
    assert decide(0.5, 0.3, 0.7, rule, delta_ms=20.0, min_effect_ms=5.0)[0] == "fail"

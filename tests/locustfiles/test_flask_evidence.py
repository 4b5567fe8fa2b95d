"""The real app's demo is sized for enough evidence, on paper: computed from the config
(weights, think time, users, phases, the app's limits), not by timing a run."""

from __future__ import annotations

import pytest

from experiments.experiment import REPO_ROOT, Experiment
from experiments.experiment_file import load_experiment
from workload.pacing import over_limit, parse_limit, route_rates
from workload.tomlconfig import CONFIG_DIR, load_toml

DEMO = REPO_ROOT / "config/experiments/archivist-demo.toml"
TAIL_S = 1.0  # experiments.verdict.TAIL_S: the last second of the load is not judged


def flask_section() -> dict:
    """config/workload.toml [flask] (read as TOML: workload.settings imports Locust)."""
    return load_toml(CONFIG_DIR / "workload.toml")["flask"]


def judged_phases(experiment: Experiment) -> dict[str, float]:
    """Seconds of each phase the verdict judges, from the timeline (faults are far apart)."""
    h, load = experiment.hypothesis, experiment.load
    faults = sorted(experiment.faults, key=lambda f: f.at)
    phases = {"before": faults[0].at - load.warmup}
    for i, fault in enumerate(faults):
        phases[f"during #{i + 1}"] = fault.duration
        horizon = faults[i + 1].at if i + 1 < len(faults) else load.duration - TAIL_S
        phases[f"after #{i + 1}"] = horizon - fault.end - h.recovers_within
    return phases


def demo_rates() -> tuple[Experiment, dict[str, float]]:
    experiment = load_experiment(DEMO)
    flask = flask_section()
    think = (flask["wait_min_s"] + flask["wait_max_s"]) / 2
    rates = route_rates(flask["weights"], flask["service_s"], think, experiment.load.users)
    return experiment, rates


def test_each_p95_route_of_the_demo_expects_its_target_in_every_phase() -> None:
    experiment, rates = demo_rates()
    target = experiment.hypothesis.min_samples
    assert target >= 40
    short = {
        (phase, route): round(rates[route] * seconds, 1)
        for phase, seconds in judged_phases(experiment).items()
        for route in experiment.hypothesis.p95_routes
        if rates[route] * seconds < target
    }
    assert not short, f"expected samples under the target {target}: {short}"


def test_no_demo_user_meets_the_apps_per_address_limits() -> None:
    experiment, rates = demo_rates()
    flask = flask_section()
    assert experiment.load.options["source-addresses"] >= experiment.load.users  # 1 each
    assert set(flask["limits"]) == set(flask["weights"])  # every task's route has its limit
    assert over_limit(rates, experiment.load.users, experiment.load.duration, flask["limits"]) == {}


def test_the_old_demo_pacing_falls_short_of_the_target() -> None:
    """10 users at 1-3 s (the demo before it was sized) expected ~7 requests of a route
    in a 20 s window: the arithmetic above must see that."""
    flask = flask_section()
    rates = route_rates(flask["weights"], flask["service_s"], 2.0, 10)
    assert rates["upload"] * 20 < 40


def test_pacing_arithmetic_and_limit_words() -> None:
    rates = route_rates({"a": 3, "b": 1}, {"default": 0.0}, 1.0, 4)
    assert rates == pytest.approx({"a": 3.0, "b": 1.0})
    assert parse_limit("30 per minute") == (30, 60.0)
    assert over_limit({"a": 1.0}, 1, 300, {"a": "10 per hour"}) == {"a": 301.0}
    with pytest.raises(ValueError, match="expected 'N per"):
        parse_limit("30/minute")

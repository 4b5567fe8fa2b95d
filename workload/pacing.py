"""What a closed workload's weights, think time and users should give per route, on paper.

A Locust user picks a task by weight, runs it (its service time), then waits its think
time; so one user does 1 / (mean think + mean service) tasks a second, each route its
weight's share of them. From that, a run's config can be checked before it runs: does
each judged route reach the sample target in each phase, and does no user meet the app's
per-address limits? Expected values, not a measurement: the verdict still counts what
the run really made (experiments.evidence), and skips a check that fell short.
"""

from __future__ import annotations

from collections.abc import Mapping


def mean_service_s(weights: Mapping[str, int], service_s: Mapping[str, float]) -> float:
    """Mean seconds a task's request takes; `service_s["default"]` for unlisted routes."""
    total = sum(weights.values())
    default = float(service_s.get("default", 0.0))
    return sum(w * float(service_s.get(k, default)) for k, w in weights.items()) / total


def route_rates(
    weights: Mapping[str, int],
    service_s: Mapping[str, float],
    think_s: float,
    users: int,
) -> dict[str, float]:
    """Expected requests per second of each route for `users` users."""
    total = sum(weights.values())
    tasks_per_s = users / (think_s + mean_service_s(weights, service_s))
    return {k: tasks_per_s * w / total for k, w in weights.items()}


UNITS = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}


def parse_limit(text: str) -> tuple[int, float]:
    """`"30 per minute"` (Flask-Limiter's words) -> (30, 60.0); ValueError otherwise."""
    parts = text.split()
    if len(parts) != 3 or parts[1] != "per" or not parts[0].isdigit():
        raise ValueError(f"{text!r}: expected 'N per second|minute|hour|day'")
    unit = parts[2].removesuffix("s")
    if unit not in UNITS:
        raise ValueError(f"{text!r}: expected 'N per second|minute|hour|day'")
    return int(parts[0]), UNITS[unit]


def over_limit(
    rates: Mapping[str, float],
    users: int,
    run_s: float,
    limits: Mapping[str, str],
    extra_per_user: int = 1,
) -> dict[str, float]:
    """Routes where one user (one address) would meet its limit's fixed window within the
    run: route -> that user's expected requests in one window (plus `extra_per_user`, its
    on_start look round, counted in every window to stay on the safe side)."""
    out = {}
    for route, rate in rates.items():
        if route not in limits:
            continue
        allowed, window = parse_limit(limits[route])
        mine = rate / users * min(window, run_s) + extra_per_user
        if mine > allowed:
            out[route] = mine
    return out

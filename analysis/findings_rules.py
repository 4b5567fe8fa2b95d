"""The ``[findings]`` section of a route profile: what counts as a defect for one app.

Route limits and handlers are keyed by the profile's route keys (``health = 1000``), so
they follow the route wherever its path is. Data, reviewed in config/routes/*.toml.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analysis.load import InputError


@dataclass(frozen=True)
class Rules:
    """A profile's ``[findings]``: what counts as a defect for this application."""

    profile: str = "contract"
    outage_status: tuple[int, ...] = (503,)
    error_shape: str = "json"  # json: an answer during an outage must be JSON; any: no check
    grace_s: float = 10.0
    slow_ms: float | None = None  # median limit of every endpoint, None: no default limit
    route_slow_ms: dict[tuple[str, str], float] = field(default_factory=dict)
    min_requests: int = 5
    # (method, name) -> the functions that serve the route, as the app's log names them
    handlers: dict[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)
    routes: tuple[tuple[str, str], ...] = ()  # every (method, name) of the profile

    def slow_limit(self, method: str, name: str) -> float | None:
        return self.route_slow_ms.get((method, name), self.slow_ms)


def load_rules(profile: str) -> Rules:
    """The ``[findings]`` section of a route profile (name or path); InputError if invalid.

    Route limits are keyed by the profile's route keys (``health = 1000``), so they follow
    the route wherever its path is.
    """
    from workload.routes import ROUTES_DIR, Profile
    from workload.tomlconfig import ConfigError, load_toml

    try:
        loaded = Profile.load(profile)
        path = Path(profile) if Path(profile).suffix else ROUTES_DIR / f"{profile}.toml"
        section = load_toml(path).get("findings", {})
    except ConfigError as exc:
        raise InputError(str(exc)) from None
    where = f"{path}: [findings]"
    known = {
        "outage_status",
        "error_shape",
        "grace_s",
        "slow_ms",
        "route_slow_ms",
        "min_requests",
        "handlers",
    }
    if unknown := sorted(set(section) - known):
        raise InputError(
            f"{where} has unknown keys {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    try:
        outage = tuple(int(s) for s in section.get("outage_status", [503]))
        shape = str(section.get("error_shape", "json"))
        grace = float(section.get("grace_s", 10.0))
        default_slow = section.get("slow_ms")
        slow = float(default_slow) if default_slow is not None else None
        minimum = int(section.get("min_requests", 5))
        per_route = {str(k): float(v) for k, v in section.get("route_slow_ms", {}).items()}
        named = {str(k): _handlers(v) for k, v in section.get("handlers", {}).items()}
    except (TypeError, ValueError, AttributeError) as exc:
        raise InputError(f"{where}: {exc}") from None
    if shape not in ("json", "any"):
        raise InputError(f"{where}: error_shape {shape!r}: expected json or any")
    if grace < 0 or minimum < 1 or (slow is not None and slow <= 0):
        raise InputError(f"{where}: grace_s >= 0, min_requests >= 1 and slow_ms > 0 expected")
    route_slow: dict[tuple[str, str], float] = {}
    for key, ms in per_route.items():
        if key not in loaded.routes:
            known_routes = ", ".join(sorted(loaded.routes))
            raise InputError(
                f"{where}.route_slow_ms: {key!r} is not a route; known: {known_routes}"
            )
        route = loaded.routes[key]
        route_slow[(route.method, route.name)] = ms
    if unknown := sorted(set(named) - set(loaded.routes)):
        known_routes = ", ".join(sorted(loaded.routes))
        raise InputError(
            f"{where}.handlers: {', '.join(map(repr, unknown))} not a route; known: {known_routes}"
        )
    handlers = {(loaded.routes[k].method, loaded.routes[k].name): fs for k, fs in named.items()}
    every = tuple((r.method, r.name) for r in loaded.routes.values())
    return Rules(loaded.name, outage, shape, grace, slow, route_slow, minimum, handlers, every)


def _handlers(value: Any) -> tuple[str, ...]:
    """A route's handlers: ``"module:function"`` or a list of them."""
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        raise TypeError(f'handlers: {value!r}: expected "module:function" or a list of them')
    if bad := [v for v in values if not re.fullmatch(r"(?:[\w.]+:)?\w+", v)]:
        raise ValueError(f'handlers: {bad[0]!r}: expected "module:function"')
    return tuple(values)


def profile_of(meta: dict[str, Any]) -> str:
    """The route profile a run used (its Locust --routes option), else the contract."""
    options = meta.get("options")
    chosen = options.get("routes") if isinstance(options, dict) else None
    return str(chosen) if chosen else "contract"

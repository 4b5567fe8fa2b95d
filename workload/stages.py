"""The stages of each load shape, from config/shapes.toml: pure data, no Locust here.

Kept apart from the ``LoadTestShape`` (workload/shapes.py) so the stage arithmetic and
the config checks are testable without importing Locust.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workload.tomlconfig import CONFIG_DIR, ConfigError, load_toml

SHAPES_TOML = CONFIG_DIR / "shapes.toml"
SHAPE_NAMES = ("none", "ramp", "step", "spike", "soak")


@dataclass(frozen=True)
class Stage:
    until_s: float  # the stage lasts until this many seconds into the test
    users: int
    spawn_rate: float


def _params(table: dict[str, Any], name: str, keys: tuple[str, ...], path: Path) -> list[float]:
    section = table.get(name)
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: no [{name}] table for --shape {name}")
    values = []
    for key in keys:
        value = section.get(key)
        positive = key in ("spawn_rate", "steps", "step_s")  # zero would never end or move
        low = "> 0" if positive else ">= 0"
        if (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or value < 0
            or (positive and value == 0)
        ):
            raise ConfigError(f"{path}: {name}.{key} = {value!r}: expected a number {low}")
        values.append(float(value))
    return values


def stages_of(name: str, path: Path = SHAPES_TOML) -> list[Stage]:
    """The stages of shape `name`, built from its table in `path`."""
    table = load_toml(path)
    if name == "ramp":
        users, ramp, hold, down = _params(
            table, name, ("users", "ramp_s", "hold_s", "down_s"), path
        )
        up_rate, down_rate = users / max(ramp, 1.0), users / max(down, 1.0)
        return [
            Stage(ramp, int(users), up_rate),
            Stage(ramp + hold, int(users), up_rate),
            Stage(ramp + hold + down, 0, down_rate),
        ]
    if name == "step":
        keys = ("start_users", "step_users", "step_s", "steps", "spawn_rate")
        start, step, step_s, steps, rate = _params(table, name, keys, path)
        return [Stage((i + 1) * step_s, int(start + i * step), rate) for i in range(int(steps))]
    if name == "spike":
        keys2 = ("base_users", "spike_users", "before_s", "spike_s", "after_s", "spawn_rate")
        base, spike, before, during, after, rate = _params(table, name, keys2, path)
        return [
            Stage(before, int(base), rate),
            Stage(before + during, int(spike), rate),
            Stage(before + during + after, int(base), rate),
        ]
    if name == "soak":
        users, duration, rate = _params(table, name, ("users", "duration_s", "spawn_rate"), path)
        return [Stage(duration, int(users), rate)]
    raise ConfigError(f"--shape {name!r}: expected one of {', '.join(SHAPE_NAMES)}")

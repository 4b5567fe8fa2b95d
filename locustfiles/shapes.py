"""Load shapes chosen with ``--shape ramp|step|spike|soak`` (parameters in config/shapes.toml).

One ``LoadTestShape`` reads the choice from ``environment.parsed_options`` at every tick,
so the web UI can change it like any other option. ``--shape none`` (the default) keeps
Locust's usual behaviour: ``--users``/``--spawn-rate`` until ``--run-time``. Every shape
is a list of stages and ends by itself after the last one; ``--run-time`` can cut it short.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from locust import LoadTestShape, events

from locustfiles.archivist import CONFIG_DIR, ConfigError, load_toml

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
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
            raise ConfigError(f"{path}: {name}.{key} = {value!r}: expected a number >= 0")
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


class SelectableShape(LoadTestShape):
    """The shape named by ``--shape``; with ``none``, Locust's plain users/rate/run-time."""

    use_common_options = True

    def __init__(self) -> None:
        super().__init__()
        self._cache: dict[tuple[str, str], list[Stage]] = {}

    def tick(self) -> tuple[int, float] | None:
        assert self.runner is not None and self.runner.environment.parsed_options is not None
        opts = self.runner.environment.parsed_options
        elapsed = self.get_run_time()
        run_time = getattr(opts, "run_time", None)
        if run_time and elapsed >= run_time:
            return None
        name = getattr(opts, "shape", "none") or "none"
        if name == "none":
            return int(opts.num_users or 1), float(opts.spawn_rate or 1)
        path = str(getattr(opts, "shapes_file", "") or SHAPES_TOML)
        if (name, path) not in self._cache:
            self._cache[name, path] = stages_of(name, Path(path))
        for stage in self._cache[name, path]:
            if elapsed < stage.until_s:
                return stage.users, stage.spawn_rate
        return None


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any) -> None:
    parser.add_argument(
        "--shape",
        choices=SHAPE_NAMES,
        default="none",
        include_in_web_ui=True,
        help="Load shape; parameters in config/shapes.toml (default none: --users/--spawn-rate)",
    )
    parser.add_argument(
        "--shapes-file",
        default=str(SHAPES_TOML),
        include_in_web_ui=True,
        help="TOML file with the shape parameters (default config/shapes.toml)",
    )


@events.init.add_listener
def _check_shape(environment: Any, **_: Any) -> None:
    opts = environment.parsed_options
    name = getattr(opts, "shape", "none") if opts is not None else "none"
    if name != "none":
        try:
            stages_of(name, Path(opts.shapes_file))
        except ConfigError as exc:
            raise SystemExit(f"error: {exc}") from None

"""Load shapes chosen with ``--shape ramp|step|spike|soak`` (parameters in config/shapes.toml).

One ``LoadTestShape`` reads the choice from ``environment.parsed_options`` at every tick,
so the web UI can change it like any other option. ``--shape none`` (the default) keeps
Locust's usual behaviour: ``--users``/``--spawn-rate`` until ``--run-time``. Every shape
is a list of stages and ends by itself after the last one; ``--run-time`` can cut it short.

SIGTERM: a headless Locust with a shape class blocks in the shape before it installs its
own SIGTERM handler, so a ``kill`` (and the experiment runner's stop) ended the process at
once, without the quitting hooks that close the capture Parquet, the ledger and meta.json.
So a headless run without ``--shape`` drops the shape class (it is then exactly a plain
Locust run), and a headless run with one gets a SIGTERM handler that stops the test the
way Locust's own would.
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import Any

import gevent
from locust import LoadTestShape, events
from locust.env import Environment

from workload.stages import SHAPE_NAMES, SHAPES_TOML, Stage, stages_of
from workload.tomlconfig import ConfigError

log = logging.getLogger(__name__)


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
            try:
                self._cache[name, path] = stages_of(name, Path(path))
            except ConfigError as exc:  # chosen in the web UI: stop the test, say why
                log.error("cannot run --shape %s: %s", name, exc)
                return None
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


@events.init.add_listener
def _headless_stops_on_sigterm(environment: Environment, **_: Any) -> None:
    """Keep SIGTERM a clean stop in headless runs (see the module docstring).

    The web UI keeps the shape class whatever ``--shape`` says, so a shape can be picked
    there; its SIGTERM handler is installed before anything blocks.
    """
    opts = environment.parsed_options
    if opts is None or not getattr(opts, "headless", False):
        return
    if not isinstance(environment.shape_class, SelectableShape):
        return
    if (getattr(opts, "shape", "none") or "none") == "none":
        environment.shape_class = None  # plain users/rate/run-time, Locust's own SIGTERM
        return

    def stop_on_sigterm() -> None:
        log.info("Got SIGTERM signal; stopping the shape test")
        if environment.runner is not None:  # quitting blocks: not in the signal callback
            gevent.spawn(environment.runner.quit)

    gevent.signal_handler(signal.SIGTERM, stop_on_sigterm)

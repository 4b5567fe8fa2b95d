"""Which fixtures.json a run uses (workload/fixtures.py), from Locust's options.

`--fixtures PATH` if given; else the local stack's own file (its state dir, as
--stack-config says) when the run targets that stack and the file exists; else none, and
the workflows learn ids from the app's routes only. A bad file ends the run at start.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from locust import events
from locust.env import Environment

from workload import target
from workload.fixtures import FIXTURES_FILE, FixturesError, read_fixtures


def fixtures_path_of(environment: Environment) -> Path | None:
    """The option's file, else the local stack's when the run targets that stack."""
    options = environment.parsed_options
    given = getattr(options, "fixtures", "") if options is not None else ""
    if given:
        return Path(given)
    config = target.stack_config_of(environment)
    host = (environment.host or "").rstrip("/")
    try:
        if host and host != target.default_api_url(config):
            return None
        state = target.stack_state_dir(config)
    except SystemExit:  # an unreadable stack config: no default
        return None
    path = state / FIXTURES_FILE
    return path if path.is_file() else None


@lru_cache(maxsize=8)
def _cached(path: str) -> dict[str, tuple[str, ...]]:
    return read_fixtures(Path(path))


def fixture_ids(environment: Environment, name: str) -> tuple[str, ...]:
    """The ids of fixture `name` for this run (none without a fixtures file)."""
    path = fixtures_path_of(environment)
    return _cached(str(path)).get(name, ()) if path is not None else ()


@events.init.add_listener
def _check_fixtures(environment: Environment, **_: Any) -> None:
    """A bad --fixtures ends the run at start, with the file named."""
    path = fixtures_path_of(environment)
    if path is not None:
        try:
            _cached(str(path))
        except FixturesError as exc:
            raise SystemExit(f"error: {exc}") from None

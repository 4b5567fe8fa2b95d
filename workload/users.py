"""The base of every workload user: a person using Archivist, through the API client.

Every locustfile takes its users' base class from here, so a task body stays a few lines
a VOD operator could read. ``ArchivistUser`` logs in at start (the next regular seeded
user), then acts through ``self.api`` (workload.client); every task of every subclass is
tallied (workload.tally), and ``self.workflow(name)`` times a multi-step workflow as one
``WORKFLOW`` entry.

Tags name the area a task exercises, so ``-T`` selects a phase: ``db`` (writes and
searches that hit PostgreSQL), ``api`` (cached reads), ``external`` (Cablecast: publishing
and shows), ``system`` (health), ``auth`` and ``invalid``.

Importing this module registers the workload's Locust plug-ins (below). Locust is
extended only through its events and ``environment.parsed_options``, and calls an
event's listeners in the order they were added, so the plug-ins are imported in the
order theirs must run, and this module before any other of the project's
(``[tool.ruff.lint.isort]`` in pyproject.toml puts it first): the shape's and the Faults
panel's listeners come after these.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from locust import FastHttpUser
from locust.env import Environment

# The plug-ins, in the order their listeners run: the capture first (the others write into
# its run folder); the target (it fills in the host, or starts the stack) before the
# source addresses (they check the host); the link counters; the ledger; the shipping of
# both to a master (its test_stop after theirs, which flush); the options and
# the user classes they select; the coverage judge last.
# isort: off
from workload import capture  # noqa: F401
from workload import target
from workload import links  # noqa: F401
from workload import source_address
from workload import ledger  # noqa: F401
from workload import shipping  # noqa: F401
from workload import options  # noqa: F401
from workload import coverage_wiring  # noqa: F401
from workload import fixtures_wiring  # noqa: F401

# isort: on
from workload import cookies
from workload.client import ApiClient
from workload.judging import WorkflowFailed
from workload.settings import next_regular_user, profile_of, user_numbers, workload
from workload.tally import COVERAGE, tallied

# Areas (Locust tags); `-T db` runs only the tasks of that phase.
DB, API, EXTERNAL, SYSTEM, AUTH, INVALID = "db", "api", "external", "system", "auth", "invalid"


def report_workflow(
    environment: Environment, name: str, started: float, error: Exception | None
) -> None:
    """Report an end-to-end workflow as one Locust entry (type WORKFLOW) with percentiles."""
    environment.events.request.fire(
        request_type="WORKFLOW",
        name=name,
        response_time=(time.perf_counter() - started) * 1000.0,
        response_length=0,
        exception=error,
        context={},
    )


class ArchivistUser(FastHttpUser):
    """A person using Archivist: logs in at start, then acts through `self.api`."""

    abstract = True

    # Profiles this user class is written for (config/routes/*.toml `users`); empty: the
    # contract's users, spawned for every profile that lists no users of its own.
    for_profiles: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Every task of every workload is tallied; no task author has to remember it."""
        super().__init_subclass__(**kwargs)
        wrapped: dict[Any, Any] = {}
        tasks = []
        for t in cls.tasks:
            if callable(t) and not hasattr(t, "tasks") and not getattr(t, "_tallied", False):
                if t not in wrapped:
                    wrapped[t] = tallied(t)
                t = wrapped[t]
            tasks.append(t)
        cls.tasks = tasks

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        COVERAGE.users[type(self).__name__] += 1
        cookies.install(self.client)  # same cookies, less CPU per request (see cookies.py)
        self.source_address = source_address.bind_user(self)
        self.api = ApiClient(self, profile_of(environment))
        self.settings = workload()
        seed = os.environ.get("LOADKIT_SEED")
        number = next(user_numbers)
        self.rng = random.Random(None if seed is None else f"{seed}:{os.getpid()}:{number}")

    def on_start(self) -> None:
        self.api.login(next_regular_user())

    @property
    def cablecast_url(self) -> str:
        opts = self.environment.parsed_options
        chosen = getattr(opts, "cablecast_url", "")
        return chosen or target.default_cablecast_url(target.stack_config_of(self.environment))

    @contextmanager
    def workflow(self, name: str) -> Iterator[None]:
        """Time the steps inside as one WORKFLOW entry; a WorkflowFailed marks it failed."""
        started, error = time.perf_counter(), None
        try:
            yield
        except WorkflowFailed as exc:
            error = exc
        report_workflow(self.environment, name, started, error)

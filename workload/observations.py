"""What the workload saw in the answers that are checked against the data.

For each read a route profile's ``[[answers]]`` names (workload.answer_rules), the API
client keeps a small record of each successful answer: when, which route, how many
records and a few of their ids, or the one record's id, version and checked fields. They
are buffered per process and appended to ``observations-<pid>.jsonl`` in the run folder
at test stop, at quit and every ``FLUSH_ENTRIES`` entries, like the ledger
(workload.ledger). Bounded: at most ``KEPT_PER_ROUTE`` answers per route and process are
kept (the rest are counted, as ``dropped`` lines), so a long run costs a few MB at most.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

from locust import events
from locust.env import Environment
from locust.runners import MasterRunner

from workload.answer_rules import AnswerCheck, load_answer_checks, observed, profile_file
from workload.capture import run_dir_of
from workload.judging import Reply
from workload.tomlconfig import ConfigError

FLUSH_ENTRIES = 1000
KEPT_PER_ROUTE = 5000
_compact_json = json.JSONEncoder(separators=(",", ":"), default=str).encode


class Observations:
    """The answers of checked reads, one JSON line each, per process (see the module doc)."""

    def __init__(self) -> None:
        self.checks: dict[str, AnswerCheck] = {}
        self.entries: list[dict[str, Any]] = []
        self.kept: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()
        self.path: Path | None = None

    def observe(self, route_key: str, path_id: object, reply: Reply) -> None:
        """Keep what the check of `route_key` needs of this answer (a 2xx, judged ok)."""
        check = self.checks.get(route_key)
        if check is None:
            return
        if self.kept[route_key] >= KEPT_PER_ROUTE:
            self.dropped[route_key] += 1
            return
        self.kept[route_key] += 1
        seen = observed(check, reply.body, path_id)
        self.entries.append({"ts": time.time(), "route": route_key, **seen})
        if len(self.entries) >= FLUSH_ENTRIES:
            self.flush()

    def flush(self) -> None:
        if self.path is None:
            return
        entries, self.entries = self.entries, []
        entries += [{"route": r, "dropped": n} for r, n in self.dropped.items()]
        self.dropped.clear()
        if entries:
            with self.path.open("a") as out:
                out.writelines(_compact_json(e) + "\n" for e in entries)


OBSERVATIONS = Observations()


@events.init.add_listener
def _open(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, MasterRunner):
        return
    name = getattr(environment.parsed_options, "routes", None) or "contract"
    try:
        checks = load_answer_checks(profile_file(name))
    except ConfigError as exc:  # fail at start, with the file named (as workload.options)
        raise SystemExit(f"error: {exc}") from None
    OBSERVATIONS.checks = {c.route: c for c in checks}
    OBSERVATIONS.path = run_dir_of(environment) / f"observations-{os.getpid()}.jsonl"


@events.test_stop.add_listener
def _flush_at_stop(**_: Any) -> None:
    OBSERVATIONS.flush()


@events.quitting.add_listener
def _flush_at_quit(**_: Any) -> None:
    OBSERVATIONS.flush()

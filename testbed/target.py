"""The Archivist a load runs against: its URLs, the stores behind it, its logs and flags.

A started stack (testbed.throwaway_stack) or an external deployment (--host and the
environment) is one `Target`; the experiment runner and the gate's load take it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Target:
    api_url: str
    fault_url: str
    cablecast_url: str | None = None
    database_url: str | None = None
    redis_url: str | None = None
    external: bool = False
    app_logs: tuple[Path, ...] = ()  # the application's log files, for the findings
    # STATE/pids.json of a stack the toolkit started: whose processes' resources to sample
    pids_file: Path | None = None
    # Locust flags the hosted app wants (config/apps/NAME.toml [load] options), under the
    # experiment's own
    load_options: dict[str, Any] = field(default_factory=dict)
    # the ids of the test data the stack seeded for a hosted app (<state_dir>/fixtures.json)
    fixtures: Path | None = None

"""How many Locust processes run a run's users: Locust's own master/worker mode, as flags.

An experiment's ``[load]`` and the gate's ``[run]`` say it the same way, so both build
their Locust command from one place:

- ``workers = N``: N local worker processes (Locust's ``--processes N``; this process
  becomes their master);
- ``expect_workers = N``: a master that waits for N workers started elsewhere
  (``locust -f FILE --worker --master-host HOST`` on other hosts), bound to
  ``master_bind_host:master_bind_port``, for at most ``expect_workers_wait_s``.

The faults, the audit and the verdict stay with the master's process: workers only run
users, and their requests and ledger entries reach the master's run folder over
Locust's messages (no shared disk).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

MAX_WORKERS = 256


@dataclass(frozen=True)
class Distribution:
    workers: int = 0
    expect_workers: int = 0
    master_bind_host: str = "127.0.0.1"
    master_bind_port: int = 5557
    expect_workers_wait_s: float = 120.0

    @property
    def distributed(self) -> bool:
        return bool(self.workers or self.expect_workers)

    def flags(self) -> list[str]:
        """Locust's flags for this distribution (none for one process)."""
        if self.workers:
            return ["--processes", str(self.workers)]
        if self.expect_workers:
            return [
                "--master",
                "--expect-workers",
                str(self.expect_workers),
                "--expect-workers-max-wait",
                f"{self.expect_workers_wait_s:g}",
                "--master-bind-host",
                self.master_bind_host,
                "--master-bind-port",
                str(self.master_bind_port),
            ]
        return []

    def start_allowance_s(self) -> float:
        """Extra seconds the load may take to start: the wait for remote workers."""
        return self.expect_workers_wait_s if self.expect_workers else 0.0


FIELDS = tuple(Distribution.__dataclass_fields__)


def distribution_problem(values: dict[str, Any]) -> tuple[str, str] | None:
    """(field, why) of the first value that cannot be run, else None."""
    for key in ("workers", "expect_workers"):
        n = values.get(key, 0)
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= MAX_WORKERS:
            return key, f"must be a whole number from 0 to {MAX_WORKERS}, got {n!r}"
    if values.get("workers", 0) and values.get("expect_workers", 0):
        return "expect_workers", "and workers exclude each other: local processes or remote workers"
    host = values.get("master_bind_host", "127.0.0.1")
    if not isinstance(host, str) or not host:
        return "master_bind_host", f"must be an address to bind, got {host!r}"
    if host != "*":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return "master_bind_host", f'must be an IP address (or "*": all), got {host!r}'
    port = values.get("master_bind_port", 5557)
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        return "master_bind_port", f"must be a port from 1 to 65535, got {port!r}"
    wait = values.get("expect_workers_wait_s", 120.0)
    if isinstance(wait, bool) or not isinstance(wait, int | float) or not 0 < wait <= 3600:
        return "expect_workers_wait_s", f"must be seconds in (0, 3600], got {wait!r}"
    return None


def distribution_of(values: dict[str, Any]) -> Distribution:
    """The distribution fields of a table (validated first with distribution_problem)."""
    chosen = {k: values[k] for k in FIELDS if k in values}
    if "expect_workers_wait_s" in chosen:
        chosen["expect_workers_wait_s"] = float(chosen["expect_workers_wait_s"])
    return Distribution(**chosen)

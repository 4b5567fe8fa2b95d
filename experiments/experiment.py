"""Resilience experiments as data: what an experiment file describes, once validated.

An experiment is what a person reviews (STYLE.md section 3): the load, the faults on a
timeline, the steady-state hypothesis per phase, and the audit. experiments.experiment_file
reads and checks the TOML (config/experiments/*.toml) into these types.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faults.toxic_types import DOWN
from workload.distribution import Distribution

REPO_ROOT = Path(__file__).resolve().parents[1]

PHASES = ("before", "during", "after")
METRICS = ("error_rate", "other_errors", "p95_ms", "throughput")

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
    "==": operator.eq,
    "=": operator.eq,
}


@dataclass(frozen=True)
class Bound:
    """`value OP limit`; `relative` means the limit is a fraction of the before phase."""

    op: str
    limit: float
    relative: bool = False
    text: str = ""

    def holds(self, value: float, baseline: float | None = None) -> bool:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return False
        limit = self.limit
        if self.relative:
            if baseline is None or math.isnan(baseline):
                return False
            limit = self.limit * baseline
        return _OPS[self.op](value, limit)

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Tolerance:
    """What one phase must satisfy; None means "not checked"."""

    error_rate: Bound | None = None
    other_errors: Bound | None = None  # failed without a 503/4xx answer: timeouts, resets, 500s
    p95_ms: Bound | None = None
    throughput: Bound | None = None


@dataclass(frozen=True)
class Hypothesis:
    before: Tolerance
    during: Tolerance
    after: Tolerance
    recovers_within: float  # s after a fault ends
    sustained: float  # s the after-tolerance must hold to count as recovered
    # route keys of the load's profile whose latency p95_ms measures (empty: every request);
    # e.g. the routes that read the database, when others are slow by design
    p95_routes: tuple[str, ...] = ()
    # a check on fewer requests (p95_ms: of each of p95_routes) in a phase is skipped with
    # its count, not decided (experiments.evidence); 0: every check is decided
    min_samples: int = 0

    def phase(self, name: str) -> Tolerance:
        return {"before": self.before, "during": self.during, "after": self.after}[name]


@dataclass(frozen=True)
class Fault:
    link: str
    toxic: str  # a Toxiproxy type or "down"
    at: float  # s after the load starts
    duration: float  # s
    attributes: dict[str, Any] = field(default_factory=dict)
    stream: str = "downstream"
    toxicity: float = 1.0
    during: Tolerance | None = None  # this fault's own during-tolerance, over [hypothesis.during]

    @property
    def end(self) -> float:
        return self.at + self.duration

    def describe(self) -> str:
        """Human words for the fault, used as `what` in faults.jsonl."""
        if self.toxic == DOWN:
            return f"{self.link} down"
        attrs = ", ".join(f"{k}={v}" for k, v in self.attributes.items())
        extra = []
        if self.stream != "downstream":
            extra.append(self.stream)
        if self.toxicity < 1.0:
            extra.append(f"toxicity {self.toxicity:g}")
        tail = f" ({'; '.join(extra)})" if extra else ""
        return f"{self.toxic}{' ' + attrs if attrs else ''} on {self.link}{tail}"


@dataclass(frozen=True)
class Load:
    locustfile: str
    users: int
    spawn_rate: float
    duration: float  # s
    warmup: float  # s at the start left out of the before phase
    tags: tuple[str, ...] = ()
    exclude_tags: tuple[str, ...] = ()
    user_classes: tuple[str, ...] = ()
    arrival_rate: float | None = None  # open model: requests/s per OpenModelReader user
    shape: str | None = None  # a load shape of locustfiles/shapes.py (config/shapes.toml)
    options: dict[str, Any] = field(default_factory=dict)
    routes: str = "contract"  # route/auth profile (config/routes/NAME.toml): routes and audit
    # workers = N (local processes) or expect_workers = N (other hosts): Locust's own
    # master/worker mode; faults and audit stay with the runner (workload/distribution.py)
    distribution: Distribution = field(default_factory=Distribution)


@dataclass(frozen=True)
class Audit:
    enabled: bool = True
    lost_writes: int = 0
    duplicates: int = 0
    inconsistent: int = 0
    stuck: int = 0
    stuck_after: float = 60.0  # s: a VOD in a non-terminal state older than this is stuck
    drain: float = 30.0  # s to wait for queued jobs to finish before auditing


@dataclass(frozen=True)
class StackChoice:
    """Which Archivist the started stack hosts (None: config/stack.toml decides)."""

    app: str | None = None
    app_src: Path | None = None


@dataclass(frozen=True)
class Experiment:
    path: Path
    name: str
    title: str
    description: str
    load: Load
    faults: tuple[Fault, ...]
    hypothesis: Hypothesis
    audit: Audit
    stack: StackChoice = field(default_factory=StackChoice)

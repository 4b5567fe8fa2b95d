"""What an audit found: the findings per kind, judged against the experiment's [audit] limits.

Every kind of audit (experiments.audit_contract, experiments.audit_tables) returns an
`AuditResult`; a store it cannot read is an `AuditError`.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from experiments.experiment import Audit


class AuditError(Exception):
    """A source could not be read; the message names it."""


@dataclass(frozen=True)
class Sources:
    database_url: str | None
    redis_url: str | None = None
    cablecast_url: str | None = None  # base like http://host:port/CablecastAPI/v1


@dataclass(frozen=True)
class Finding:
    id: int | str  # a VOD id, or the key a `tables` rule looked up
    problem: str
    # a `tables` rule's acknowledged request whose row is missing: acknowledged, never
    # stored (a finding of analysis.answers_run; "" for every other finding)
    request: str = ""


@dataclass
class AuditResult:
    lost: list[Finding] = field(default_factory=list)
    duplicated: list[Finding] = field(default_factory=list)
    inconsistent: list[Finding] = field(default_factory=list)
    stuck: list[Finding] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    limits: Audit = field(default_factory=Audit)

    @property
    def ok(self) -> bool:
        return (
            len(self.lost) <= self.limits.lost_writes
            and len(self.duplicated) <= self.limits.duplicates
            and len(self.inconsistent) <= self.limits.inconsistent
            and len(self.stuck) <= self.limits.stuck
        )

    def counts(self) -> dict[str, int]:
        return {
            "lost": len(self.lost),
            "duplicated": len(self.duplicated),
            "inconsistent": len(self.inconsistent),
            "stuck": len(self.stuck),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "counts": self.counts(),
            "limits": asdict(self.limits),
            "checked": self.checked,
            "lost": [asdict(f) for f in self.lost],
            "duplicated": [asdict(f) for f in self.duplicated],
            "inconsistent": [asdict(f) for f in self.inconsistent],
            "stuck": [asdict(f) for f in self.stuck],
            "notes": self.notes,
        }


def safe_url(url: str) -> str:
    """A URL without its password, for messages."""
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)

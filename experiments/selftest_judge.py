"""What caught a seeded change: a seeded copy's outcome against the unmodified copy's.

Pure functions over what the runs left: an experiment's verdict.json (audit, findings,
hypothesis checks) and a gate's exit code and failed checks. Anything the seeded copy
shows that the unmodified copy did not is what caught the seed; the unmodified copy's own
findings (the app's known defects) are not credited to any seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Outcome:
    """One run, reduced to what can catch a defect."""

    audit_ok: bool
    findings: frozenset[str]  # "kind endpoint"
    failed_checks: frozenset[str]  # "phase: metric bound", or a gate's failed check
    error: str = ""  # the run did not end in a verdict


def experiment_outcome(verdict: dict[str, Any]) -> Outcome:
    findings = frozenset(
        f"{f.get('kind')} {f.get('endpoint')}" for f in verdict.get("findings") or []
    )
    failed = frozenset(
        f"{phase.get('label')}: {check.get('metric')} {check.get('bound')}"
        for phase in (verdict.get("verdict") or {}).get("phases", [])
        for check in phase.get("checks", [])
        if check.get("ok") is False and not check.get("skipped")
    )
    return Outcome(bool((verdict.get("audit") or {}).get("ok", True)), findings, failed)


def gate_outcome(code: int, failed_checks: list[str], tail: str = "") -> Outcome:
    if code not in (0, 1):
        return Outcome(True, frozenset(), frozenset(), error=f"gate exit {code}: {tail}")
    return Outcome(True, frozenset(), frozenset(failed_checks))


def caught_by(seeded: Outcome, unmodified: Outcome) -> list[str]:
    """What the seeded copy shows beyond the unmodified one, e.g. ["audit", "finding leak
    postgres connections (all)", "gate GET /api/member-cities: p50 +50%"]."""
    out = ["audit"] if unmodified.audit_ok and not seeded.audit_ok else []
    out += [f"finding {f}" for f in sorted(seeded.findings - unmodified.findings)]
    out += [f"check {c}" for c in sorted(seeded.failed_checks - unmodified.failed_checks)]
    return out


def row(kind: str, seeded: Outcome, unmodified: Outcome) -> tuple[str, str]:
    """(result, what): a defect is caught or missed; a fix passes when nothing new shows
    (a known defect fixed must not fail as a new problem)."""
    if seeded.error or unmodified.error:
        return "error", seeded.error or f"unmodified copy: {unmodified.error}"
    caught = caught_by(seeded, unmodified)
    if kind == "fix":
        return ("passed" if not caught else "FLAGGED"), "; ".join(caught) or "nothing new"
    return ("caught" if caught else "MISSED"), "; ".join(
        caught
    ) or "nothing beyond the unmodified copy"

"""Was anything the service acknowledged lost? The data audit after an experiment.

The workload's ledger (`ledger-<pid>.jsonl` in the run folder) holds every write the
service acknowledged; the audit compares it with what the stores really hold. What
"durable" means is the route profile's `[audit]` (config/routes/*.toml):

- `checks = "contract"`: the reference stack's rules, PostgreSQL, Cablecast, Redis and
  the job stream (experiments.audit_contract);
- `checks = "tables"`: another deployment's, for each acknowledged write the table and
  key column that must hold it (experiments.audit_tables), and with `[audit.publications]`
  each publication in the app's rows and in Cablecast (experiments.audit_publish);
- no `[audit]`: nothing is audited, and the run says so (`no_audit_note`).

Every audit returns an experiments.audit_result.AuditResult.
"""

from __future__ import annotations

from pathlib import Path

from experiments.audit_contract import run_audit
from experiments.audit_publish import audit_publications
from experiments.audit_result import AuditError, AuditResult, Sources
from experiments.audit_tables import audit_tables
from experiments.experiment import Audit
from workload.routes import Profile


def no_audit_note(profile: Profile) -> str | None:
    """Why nothing is audited for this profile (None: it has an audit)."""
    if profile.audit is None:
        return (
            f"profile {profile.name} defines no audit (no [audit] in its config/routes file): "
            "nothing was audited"
        )
    return None


def audit_for_profile(
    run_dir: Path, sources: Sources, limits: Audit, profile: Profile
) -> AuditResult | None:
    """The audit the profile defines (None when it defines none: see `no_audit_note`)."""
    if profile.audit is None:
        return None
    if sources.database_url is None:
        raise AuditError("the audit needs the database: set DATABASE_URL")
    if profile.audit.checks == "tables":
        result = audit_tables(run_dir, sources.database_url, profile, limits)
        if profile.audit.publications is not None:
            audit_publications(
                run_dir,
                sources.database_url,
                sources.cablecast_url,
                profile.audit.publications,
                result,
            )
        return result
    return run_audit(run_dir, sources, limits)

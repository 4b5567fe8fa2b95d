"""The `tables` audit: each acknowledged durable write is in the table its profile names.

A deployment other than the reference stack says what durable means there in its route
profile's `[audit]` (`checks = "tables"`, config/routes/*.toml): for each acknowledged
write, the table and key column that must hold it (or, for a delete, must not). The
workload's ledger records those writes as `ack` entries.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from experiments.audit_result import AuditError, AuditResult, Finding, safe_url
from experiments.experiment import Audit
from workload.routes import AuditRules, Profile
from workload.run_lines import ledger_entries


def read_acks(run_dir: Path, kinds: tuple[str, ...] = ("ack",)) -> list[dict[str, Any]]:
    """The `ack` entries of the ledger (profiles audited by tables), oldest first; `kinds`
    adds others (`refused`: a write the service answered with a 5xx)."""
    return ledger_entries(run_dir, kinds)


def judge_tables(
    rules: AuditRules,
    acks: list[dict[str, Any]],
    present: dict[tuple[str, str], set[str]],
    limits: Audit,
) -> AuditResult:
    """Each acknowledged write against its rules (pure): `present` maps (table, column) to
    the keys found there among those looked up."""
    result = AuditResult(limits=limits)
    result.checked = {"acknowledged": len(acks)}
    for rule in rules.durable:
        keys = _keys_of(rule.request, rule.field, acks)
        found = present.get((rule.table, rule.column), set())
        result.checked[f"{rule.table}.{rule.column}"] = len(keys)
        for key in keys:
            if rule.absent and key in found:
                result.lost.append(
                    Finding(key, f"{rule.request} acknowledged, but {rule.table} still has it")
                )
            elif not rule.absent and key not in found:
                result.lost.append(
                    Finding(
                        key,
                        f"{rule.request} acknowledged, but no {rule.table} row has "
                        f"{rule.column} = {key!r}",
                        request=rule.request,
                    )
                )
    # The not_durable requests' acknowledgements are a finding of their own ("acknowledged,
    # never stored", analysis.answers_run), not a lost write the experiment's limit counts.
    if not acks:
        result.notes.append("the ledger holds no acknowledged write this profile audits")
    return result


def _keys_of(request: str, answer_field: str, acks: list[dict[str, Any]]) -> list[str]:
    keys = []
    for ack in acks:
        if ack.get("request") != request:
            continue
        value = (ack.get("values") or {}).get(answer_field)
        if value is not None and str(value) not in keys:
            keys.append(str(value))
    return keys


def fetch_present(
    database_url: str, profile: Profile, wanted: dict[tuple[str, str], list[str]]
) -> dict[tuple[str, str], set[str]]:
    """The keys of `wanted` found in each (table, column); AuditError names a missing table."""
    present: dict[tuple[str, str], set[str]] = {}
    try:
        with psycopg.connect(database_url, connect_timeout=5) as conn:
            for (table, column), keys in wanted.items():
                query = sql.SQL("SELECT {col}::text FROM {table} WHERE {col}::text = ANY(%s)")
                try:
                    rows = conn.execute(
                        query.format(col=sql.Identifier(column), table=sql.Identifier(table)),
                        (keys,),
                    ).fetchall()
                except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn) as exc:
                    raise AuditError(
                        f"profile {profile.name} audits {table}.{column}, which the database "
                        f"{safe_url(database_url)} lacks ({exc.diag.message_primary}): is it the "
                        f"{profile.name} deployment's database?"
                    ) from None
                present[(table, column)] = {str(r[0]) for r in rows}
    except psycopg.Error as exc:
        raise AuditError(f"database {safe_url(database_url)}: {exc}") from None
    return present


def audit_tables(run_dir: Path, database_url: str, profile: Profile, limits: Audit) -> AuditResult:
    """The `tables` audit: every acknowledged durable write of the ledger is in its table."""
    rules = profile.audit
    if rules is None or rules.checks != "tables":
        raise AuditError(f"profile {profile.name} is not audited by tables")
    acks = read_acks(run_dir)
    wanted: dict[tuple[str, str], list[str]] = {}
    for rule in rules.durable:
        keys = _keys_of(rule.request, rule.field, acks)
        if keys:
            wanted.setdefault((rule.table, rule.column), []).extend(keys)
    present = fetch_present(database_url, profile, wanted) if wanted else {}
    return judge_tables(rules, acks, present, limits)

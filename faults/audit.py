"""Was anything the service acknowledged lost? The data audit after an experiment.

The workload's ledger (`ledger-<pid>.jsonl` in the run folder) holds every write the
service acknowledged. The audit compares it with what is really there:

- PostgreSQL: every VOD the ledger says exists does, with a version at least the one the
  client was told and the fields the client set (unless a later acknowledged change
  explains the difference); nothing the ledger says was deleted is present; a VOD told
  "published" is published with the Cablecast ids the client was told.
- Cablecast: every published VOD is there exactly once: one show carrying its marker
  `[archivist-vod:<id>]` and one Cablecast VOD on that show (via the listing API, so it
  works against the simulator and a real Cablecast alike).
- Redis: a cached VOD agrees with its row (same version and title; no cached copy of a
  deleted VOD, no tombstone hiding a live one).
- Jobs: no VOD is stuck in a processing state longer than `stuck_after`, and the job
  stream's consumer group has nothing pending after the drain.

Gathering (`fetch_*`) is apart from judging (`judge`, a pure function), so the rules are
tested on small inputs. Every finding names the VOD and says what differs.

Those are the reference stack's rules (`[audit] checks = "contract"` in
config/routes/contract.toml). Another deployment's profile says what durable means there
(`checks = "tables"`: for each acknowledged write, the table and key column that must hold
it; `audit_tables`), or has no `[audit]`, and then the run says nothing was audited.
"""

from __future__ import annotations

import json
import re
import time
import tomllib
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis
from psycopg import sql
from psycopg.rows import dict_row

from faults.experiment import REPO_ROOT, Audit
from workload.routes import AuditRules, Profile

IN_PROCESS = ("transcoding", "captioning", "publishing")
TOMBSTONE_VERSION = 2**62  # testbed/api/cache.py: a delete leaves this version
VOD_KEY = "archivist:vod:{id}"  # testbed/api/cache.py vod_key
MARKER = re.compile(r"\[archivist-vod:(\d+)\]")
APP_CONFIG = REPO_ROOT / "config" / "archivist.toml"
PAGE = 500
MAX_PAGES = 200  # every listing is bounded: 100k items at most
QUIET_S = 10.0  # s without any change to a processing VOD: the drain stops waiting
CHECKED_FIELDS = ("title", "description", "file_name", "duration_s", "size_bytes")


class AuditError(Exception):
    """A source could not be read; the message names it."""


PendingJob = tuple[str, int, float]  # stream message id, VOD id (0: unknown), idle seconds


@dataclass(frozen=True)
class Sources:
    database_url: str | None
    redis_url: str | None = None
    cablecast_url: str | None = None  # base like http://host:port/CablecastAPI/v1


@dataclass(frozen=True)
class Finding:
    id: int | str  # a VOD id, or the key a `tables` rule looked up
    problem: str


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


@dataclass
class Expected:
    """What the service last promised about one VOD, folded from its ledger events."""

    id: int
    exists: bool = True
    version: int = 0
    fields: dict[str, Any] = field(default_factory=dict)
    published: tuple[int | None, int | None] | None = None  # (show id, cablecast vod id)


@dataclass(frozen=True)
class CablecastView:
    """Shows carrying an Archivist marker, and Cablecast VODs per show."""

    shows_by_vod: dict[int, list[int]]
    vods_by_show: dict[int, list[int]]


# -- the ledger ----------------------------------------------------------------------


def read_ledger(run_dir: Path) -> list[dict[str, Any]]:
    """Every acknowledged write of the run, oldest first; torn lines are skipped and counted."""
    events = []
    for path in sorted(run_dir.glob("ledger-*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            try:
                event = json.loads(line)
                int(event["id"])
                float(event["ts"])
            except (ValueError, KeyError, TypeError):
                continue
            events.append(event)
    events.sort(key=lambda e: float(e["ts"]))
    return events


def expectations(events: list[dict[str, Any]]) -> dict[int, Expected]:
    """Fold the ledger into the last promise per VOD (events must be in time order)."""
    result: dict[int, Expected] = {}
    for event in events:
        vod_id = int(event["id"])
        kind = event.get("kind")
        exp = result.setdefault(vod_id, Expected(vod_id))
        version = event.get("version")
        if isinstance(version, int):
            exp.version = max(exp.version, version)
        if kind == "created":
            exp.exists = True
            if isinstance(event.get("title"), str):
                exp.fields["title"] = event["title"]
        elif kind == "updated":
            exp.fields.update(
                {k: v for k, v in (event.get("fields") or {}).items() if k in CHECKED_FIELDS}
            )
        elif kind == "deleted":
            exp.exists = False
        elif kind == "published":
            exp.published = (event.get("cablecast_show_id"), event.get("cablecast_vod_id"))
    return result


# -- judging (pure) ----------------------------------------------------------------------


def judge(
    expected: dict[int, Expected],
    rows: dict[int, dict[str, Any]],
    cache: dict[int, tuple[int, dict[str, Any] | None]] | None,
    cablecast: CablecastView | None,
    pending: list[PendingJob] | None,
    now: float,
    limits: Audit,
) -> AuditResult:
    """Compare promises with the stores; see the module doc for the rules."""
    result = AuditResult(limits=limits)
    result.checked = {"vods": len(expected), "rows": len(rows)}
    for vod_id, exp in sorted(expected.items()):
        row = rows.get(vod_id)
        if not exp.exists:
            if row is not None:
                result.lost.append(
                    Finding(vod_id, "deleted (204 acknowledged) but still in the database")
                )
        elif row is None:
            result.lost.append(
                Finding(vod_id, f"acknowledged (version {exp.version}) but not in the database")
            )
        else:
            _check_row(result, exp, row)
    published = {
        vod_id
        for vod_id, exp in expected.items()
        if exp.exists
        and (exp.published is not None or rows.get(vod_id, {}).get("status") == "published")
    }
    result.checked["published"] = len(published)
    if cablecast is None:
        result.notes.append("Cablecast not audited: no Cablecast URL")
    else:
        for vod_id in sorted(published):
            _check_cablecast(result, vod_id, rows.get(vod_id), cablecast)
    if cache is None:
        result.notes.append("cache not audited: no Redis URL")
    else:
        result.checked["cached"] = len(cache)
        for vod_id, (version, payload) in sorted(cache.items()):
            _check_cache(result, vod_id, version, payload, rows.get(vod_id))
    for vod_id, row in sorted(rows.items()):
        if row.get("status") in IN_PROCESS or (
            row.get("status") == "uploaded" and row.get("job_id")
        ):
            age = now - float(row["updated_at"])
            if age > limits.stuck_after:
                result.stuck.append(
                    Finding(
                        vod_id, f"{row['status']} for {age:.0f}s (bound {limits.stuck_after:g}s)"
                    )
                )
    if pending is None:
        result.notes.append("job stream not audited: no Redis URL")
    else:
        for message_id, vod_id, idle in pending:
            if message_id.startswith("lag:"):
                count = message_id.split(":", 1)[1]
                result.stuck.append(Finding(0, f"{count} queued jobs were never delivered"))
            elif vod_id in expected:
                result.stuck.append(
                    Finding(
                        vod_id, f"job {message_id} delivered {idle:.0f}s ago, never acknowledged"
                    )
                )
            else:  # another run's job: reported, not charged to this one
                result.notes.append(
                    f"job {message_id} (VOD {vod_id}, not this run's) pending for {idle:.0f}s"
                )
    return result


def _check_row(result: AuditResult, exp: Expected, row: dict[str, Any]) -> None:
    vod_id = exp.id
    if int(row["version"]) < exp.version:
        result.lost.append(
            Finding(
                vod_id, f"version {row['version']} in the database < {exp.version} acknowledged"
            )
        )
    for key, told in exp.fields.items():
        if key in row and row[key] != told:
            result.lost.append(Finding(vod_id, f"{key} is {row[key]!r}, acknowledged {told!r}"))
    if exp.published is not None:
        if row.get("status") != "published":
            result.lost.append(
                Finding(vod_id, f"told published, database says {row.get('status')}")
            )
        show_id, cc_vod = exp.published
        if (row.get("cablecast_show_id"), row.get("cablecast_vod_id")) != (show_id, cc_vod):
            result.inconsistent.append(
                Finding(
                    vod_id,
                    f"Cablecast ids in the database ({row.get('cablecast_show_id')}, "
                    f"{row.get('cablecast_vod_id')}) differ from those told ({show_id}, {cc_vod})",
                )
            )


def _check_cablecast(
    result: AuditResult, vod_id: int, row: dict[str, Any] | None, view: CablecastView
) -> None:
    shows = view.shows_by_vod.get(vod_id, [])
    if not shows:
        result.lost.append(Finding(vod_id, "published but no Cablecast show carries its marker"))
        return
    if len(shows) > 1:
        result.duplicated.append(Finding(vod_id, f"{len(shows)} Cablecast shows: {sorted(shows)}"))
    cc_vods = sorted(v for s in shows for v in view.vods_by_show.get(s, []))
    if not cc_vods:
        result.lost.append(Finding(vod_id, f"published but Cablecast show {shows[0]} has no VOD"))
    elif len(cc_vods) > 1:
        result.duplicated.append(Finding(vod_id, f"{len(cc_vods)} Cablecast VODs: {cc_vods}"))
    if row is not None and row.get("cablecast_vod_id") not in (None, *cc_vods):
        result.inconsistent.append(
            Finding(
                vod_id,
                f"database names Cablecast VOD {row['cablecast_vod_id']}, Cablecast has {cc_vods}",
            )
        )


def _check_cache(
    result: AuditResult,
    vod_id: int,
    version: int,
    payload: dict[str, Any] | None,
    row: dict[str, Any] | None,
) -> None:
    if version >= TOMBSTONE_VERSION:
        if row is not None:
            result.inconsistent.append(
                Finding(vod_id, "cache says deleted, the database row exists")
            )
        return
    if row is None:
        result.inconsistent.append(
            Finding(vod_id, f"cached (version {version}) but not in the database")
        )
        return
    if version != int(row["version"]):
        result.inconsistent.append(
            Finding(vod_id, f"cached version {version}, database version {row['version']}")
        )
    elif payload is not None:
        for key in ("title", "status"):
            if key in payload and payload[key] != row.get(key):
                result.inconsistent.append(
                    Finding(vod_id, f"cached {key} {payload[key]!r}, database {row.get(key)!r}")
                )


# -- gathering ---------------------------------------------------------------------------


def fetch_rows(database_url: str, ids: list[int]) -> dict[int, dict[str, Any]]:
    """The VOD rows with these ids (updated_at as epoch seconds)."""
    try:
        with psycopg.connect(database_url, connect_timeout=5, row_factory=dict_row) as conn:
            cur = conn.execute(
                "SELECT id, title, description, file_name, duration_s, size_bytes, status, "
                "version, cablecast_show_id, cablecast_vod_id, job_id, "
                "extract(epoch FROM updated_at)::float8 AS updated_at "
                "FROM vods WHERE id = ANY(%s)",
                (ids,),
            )
            return {int(r["id"]): dict(r) for r in cur.fetchall()}
    except psycopg.Error as exc:
        raise AuditError(f"database {_safe(database_url)}: {exc}") from None


def fetch_cache(redis_url: str, ids: list[int]) -> dict[int, tuple[int, dict[str, Any] | None]]:
    """Cached VOD entries `version|json` by id (absent keys left out)."""
    client = redis.Redis.from_url(redis_url, socket_timeout=5, decode_responses=True)
    try:
        values = client.mget([VOD_KEY.format(id=i) for i in ids]) if ids else []
    except redis.RedisError as exc:
        raise AuditError(f"redis {_safe(redis_url)}: {exc}") from None
    finally:
        client.close()
    result: dict[int, tuple[int, dict[str, Any] | None]] = {}
    for vod_id, raw in zip(ids, values, strict=True):
        if raw is None:
            continue
        version, _, payload = str(raw).partition("|")
        try:
            result[vod_id] = (int(version), json.loads(payload) if payload else None)
        except ValueError:
            result[vod_id] = (-1, None)
    return result


def queue_names(config: Path = APP_CONFIG) -> tuple[str, str]:
    queue = tomllib.loads(config.read_text(encoding="utf-8"))["queue"]
    return str(queue["stream"]), str(queue["group"])


def fetch_pending(redis_url: str) -> list[PendingJob]:
    """Jobs delivered to a worker and not yet acknowledged (with their VOD and idle time),
    plus a `lag:N` entry when N jobs have not even been delivered."""
    stream, group = queue_names()
    client = redis.Redis.from_url(redis_url, socket_timeout=5, decode_responses=True)
    try:
        try:
            entries = client.xpending_range(stream, group, min="-", max="+", count=1000)
            groups = client.xinfo_groups(stream)
        except redis.ResponseError:
            return []  # no stream or group yet: nothing was ever queued
        jobs: list[PendingJob] = []
        for entry in entries:
            message_id = str(entry["message_id"])
            found = client.xrange(stream, message_id, message_id)
            fields: dict[Any, Any] = dict(found[0][1] or {}) if found else {}
            raw = str(fields.get("vod_id", ""))
            vod = int(raw) if raw.isdigit() else 0
            jobs.append((message_id, vod, float(entry["time_since_delivered"]) / 1000.0))
        for g in groups:
            if g.get("name") == group and g.get("lag"):
                jobs.append((f"lag:{g['lag']}", 0, 0.0))
        return jobs
    except redis.RedisError as exc:
        raise AuditError(f"redis {_safe(redis_url)}: {exc}") from None
    finally:
        client.close()


def fetch_cablecast(base_url: str) -> CablecastView:
    """Marker shows and VODs per show, through the paged listing API."""
    shows_by_vod: dict[int, list[int]] = defaultdict(list)
    vods_by_show: dict[int, list[int]] = defaultdict(list)
    with httpx.Client(base_url=base_url.rstrip("/"), timeout=10.0, trust_env=False) as http:
        for show in _pages(http, "/shows", "shows", {"search": "archivist-vod"}):
            for match in MARKER.finditer(str(show.get("comments", ""))):
                shows_by_vod[int(match.group(1))].append(int(show["id"]))
        for vod in _pages(http, "/vods", "vods", {}):
            if vod.get("show") is not None:
                vods_by_show[int(vod["show"])].append(int(vod["id"]))
    return CablecastView(dict(shows_by_vod), dict(vods_by_show))


def _pages(
    http: httpx.Client, path: str, root: str, params: dict[str, Any]
) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for page in range(MAX_PAGES):
        try:
            response = http.get(path, params={**params, "page_size": PAGE, "offset": page * PAGE})
            response.raise_for_status()
            batch = response.json()[root]
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            raise AuditError(f"Cablecast {http.base_url}{path}: {exc}") from None
        items.extend(batch)
        if len(batch) < PAGE:
            break
    return items


def in_process(database_url: str, ids: list[int]) -> tuple[int, float]:
    """(VODs of `ids` in processing, seconds since the most recent change among them)."""
    with psycopg.connect(database_url, connect_timeout=5) as conn:
        row = conn.execute(
            "SELECT count(*), extract(epoch FROM now() - max(updated_at))::float8 FROM vods "
            "WHERE id = ANY(%s) AND (status = ANY(%s) "
            "OR (status = 'uploaded' AND job_id IS NOT NULL))",
            (ids, list(IN_PROCESS)),
        ).fetchone()
    if not row or not row[0]:
        return 0, 0.0
    return int(row[0]), float(row[1] or 0.0)


def drain(sources: Sources, timeout: float, run_dir: Path | None = None) -> float:
    """Wait until the run's VODs are out of processing and no job is pending, or nothing
    has moved for QUIET_S (what stays put is for the audit to report), or `timeout`.

    Returns the seconds waited.
    """
    started = time.monotonic()
    ids = sorted(expectations(read_ledger(run_dir)).keys()) if run_dir else []
    while time.monotonic() - started < timeout:
        try:
            busy, idle = (
                in_process(sources.database_url, ids) if sources.database_url and ids else (0, 0.0)
            )
            pending = [
                job
                for job in (fetch_pending(sources.redis_url) if sources.redis_url else [])
                if job[1] in ids or job[0].startswith("lag:")
            ]
        except (psycopg.Error, AuditError):
            busy, idle, pending = 1, 0.0, []  # a store still recovering: wait for it too
        if busy == 0 and not pending:
            break
        if busy and idle > QUIET_S and not pending:
            break
        time.sleep(0.5)
    return time.monotonic() - started


def run_audit(run_dir: Path, sources: Sources, limits: Audit) -> AuditResult:
    """Gather from every available store and judge; AuditError if a store cannot be read."""
    if sources.database_url is None:
        raise AuditError("the audit needs the database: set DATABASE_URL")
    expected = expectations(read_ledger(run_dir))
    ids = sorted(expected)
    rows = fetch_rows(sources.database_url, ids)
    cache = fetch_cache(sources.redis_url, ids) if sources.redis_url else None
    pending = fetch_pending(sources.redis_url) if sources.redis_url else None
    cablecast = fetch_cablecast(sources.cablecast_url) if sources.cablecast_url else None
    result = judge(expected, rows, cache, cablecast, pending, time.time(), limits)
    if not expected:
        result.notes.append("the ledger is empty: no acknowledged write to audit")
    return result


def _safe(url: str) -> str:
    """A URL without its password, for messages."""
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


# -- per profile: what "durable" means is the profile's [audit] (config/routes/*.toml) ------


def no_audit_note(profile: Profile) -> str | None:
    """Why nothing is audited for this profile (None: it has an audit)."""
    if profile.audit is None:
        return (
            f"profile {profile.name} defines no audit (no [audit] in its config/routes file): "
            "nothing was audited"
        )
    return None


def read_acks(run_dir: Path) -> list[dict[str, Any]]:
    """The `ack` entries of the ledger (profiles audited by tables), oldest first."""
    acks = []
    for path in sorted(run_dir.glob("ledger-*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a torn last line
            if isinstance(entry, dict) and entry.get("kind") == "ack":
                acks.append(entry)
    acks.sort(key=lambda e: float(e.get("ts", 0)))
    return acks


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
                    )
                )
    for request in rules.not_durable:
        n = sum(1 for a in acks if a.get("request") == request)
        if n:
            result.notes.append(
                f"{request}: {n} acknowledged, not audited: the app keeps nothing for it"
            )
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
                        f"{_safe(database_url)} lacks ({exc.diag.message_primary}): is it the "
                        f"{profile.name} deployment's database?"
                    ) from None
                present[(table, column)] = {str(r[0]) for r in rows}
    except psycopg.Error as exc:
        raise AuditError(f"database {_safe(database_url)}: {exc}") from None
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


def audit_for_profile(
    run_dir: Path, sources: Sources, limits: Audit, profile: Profile
) -> AuditResult | None:
    """The audit the profile defines (None when it defines none: see `no_audit_note`)."""
    if profile.audit is None:
        return None
    if sources.database_url is None:
        raise AuditError("the audit needs the database: set DATABASE_URL")
    if profile.audit.checks == "tables":
        return audit_tables(run_dir, sources.database_url, profile, limits)
    return run_audit(run_dir, sources, limits)

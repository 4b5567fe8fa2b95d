"""Each publication to Cablecast, checked end to end: the app's rows and the simulator's.

A publication (`[audit.publications]` of the route profile) writes in two places: the
Cablecast server (a show, then a VOD of it) and the app's own tables (`cablecast_shows`
with the published transcription, `cablecast_vods` with the VOD's id; the Flask
Archivist's models, core/models.py). The `tables` audit already checks that the rows of an
acknowledged publication exist; this one checks the rest:

- acknowledged: the VOD answered is in Cablecast, under the show the app's row names, and
  that show row is linked to the transcription published; one show row per publication;
- refused (a 5xx): nothing was half-written, so no more show rows than acknowledged
  publications of that transcription;
- everywhere: no show or VOD a publication made in Cablecast (its title has the marker)
  that no row of the app points at: a half-write the app has lost track of.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg

from experiments.audit_contract import _pages
from experiments.audit_result import AuditError, AuditResult, Finding, safe_url
from experiments.audit_tables import read_acks
from workload.routes import Publications


@dataclass(frozen=True)
class AppRows:
    """The app's publication rows written during the run."""

    shows: dict[int, tuple[int, str | None]]  # row id -> (Cablecast show id, transcription)
    vods: dict[int, int]  # Cablecast VOD id -> show row id


@dataclass(frozen=True)
class CablecastView:
    shows: dict[int, str]  # show id -> title (shows whose title has the marker)
    vods: dict[int, int]  # VOD id -> show id (every VOD)


def judge_publications(
    rule: Publications,
    entries: list[dict[str, Any]],
    rows: AppRows,
    cablecast: CablecastView | None,
    result: AuditResult,
) -> None:
    """Add this audit's findings and counts to `result` (pure)."""
    mine = [e for e in entries if e.get("request") == rule.request]
    acked = [e for e in mine if e.get("kind") == "ack"]
    refused = [e for e in mine if e.get("kind") == "refused"]
    result.checked["publications acknowledged"] = len(acked)
    result.checked["publications refused"] = len(refused)
    by_show_row = {row: show for row, (show, _) in rows.shows.items()}
    for entry in acked:
        values = entry.get("values") or {}
        tid, vod = str(values.get("{id}")), values.get(rule.vod_field)
        if not isinstance(vod, int):
            result.inconsistent.append(
                Finding(tid, f"{rule.request} acknowledged without a {rule.vod_field}")
            )
            continue
        show_row = rows.vods.get(vod)
        linked = rows.shows.get(show_row) if show_row is not None else None
        if linked is not None and linked[1] != tid:
            result.inconsistent.append(
                Finding(vod, f"VOD {vod} published for {tid}, its show row is for {linked[1]}")
            )
        if cablecast is None:
            continue
        if vod not in cablecast.vods:
            result.lost.append(
                Finding(
                    vod,
                    f"{rule.request} acknowledged VOD {vod} for {tid}, "
                    "which Cablecast does not have",
                )
            )
        elif show_row is not None and cablecast.vods[vod] != by_show_row.get(show_row):
            result.inconsistent.append(
                Finding(
                    vod,
                    f"Cablecast has VOD {vod} under show {cablecast.vods[vod]}, the "
                    f"app's row under {by_show_row.get(show_row)}",
                )
            )
    _once_each(rule, acked, refused, rows, result)
    if cablecast is not None:
        _half_writes(rows, cablecast, result)


def _once_each(
    rule: Publications,
    acked: list[dict[str, Any]],
    refused: list[dict[str, Any]],
    rows: AppRows,
    result: AuditResult,
) -> None:
    """No more show rows of a transcription than it had acknowledged publications."""
    wanted = Counter(str((e.get("values") or {}).get("{id}")) for e in acked)
    tried = Counter(str((e.get("values") or {}).get("{id}")) for e in refused)
    have = Counter(tid for _, tid in rows.shows.values() if tid is not None)
    for tid, n in sorted(have.items()):
        if n <= wanted[tid]:
            continue
        if tried[tid]:
            problem = (
                f"{rule.request} refused {tried[tid]}x for {tid}, yet {n - wanted[tid]} "
                "cablecast_shows row(s) more than its acknowledged publications were written"
            )
            result.inconsistent.append(Finding(tid, problem))
        else:
            result.duplicated.append(
                Finding(tid, f"{n} cablecast_shows rows for {wanted[tid]} publication(s)")
            )


def _half_writes(rows: AppRows, cablecast: CablecastView, result: AuditResult) -> None:
    """Shows and VODs a publication made in Cablecast that no row of the app points at."""
    result.checked["Cablecast publication shows"] = len(cablecast.shows)
    known_shows = {show for show, _ in rows.shows.values()}
    for show, title in sorted(cablecast.shows.items()):
        if show not in known_shows:
            result.inconsistent.append(
                Finding(
                    show,
                    f"half-written: Cablecast show {show} ({title!r}) was made by a "
                    "publication, and no cablecast_shows row points at it",
                )
            )
    for vod, show in sorted(cablecast.vods.items()):
        if show in cablecast.shows and vod not in rows.vods:
            result.inconsistent.append(
                Finding(
                    vod,
                    f"half-written: Cablecast VOD {vod} of publication show {show}, "
                    "and no cablecast_vods row has its id",
                )
            )


def fetch_rows(database_url: str, since: float) -> AppRows:
    """The app's publication rows made since `since` (epoch s; the app stores naive UTC)."""
    try:
        with psycopg.connect(database_url, connect_timeout=5) as conn:
            shows = conn.execute(
                "SELECT id, cablecast_id, transcription_id FROM cablecast_shows "
                "WHERE extract(epoch FROM created_at) >= %s",
                (since,),
            ).fetchall()
            vods = conn.execute(
                "SELECT v.id, v.show_id FROM cablecast_vods v JOIN cablecast_shows s "
                "ON s.id = v.show_id WHERE extract(epoch FROM s.created_at) >= %s",
                (since,),
            ).fetchall()
    except psycopg.Error as exc:
        raise AuditError(f"database {safe_url(database_url)}: publications: {exc}") from None
    return AppRows({r[0]: (r[1], r[2]) for r in shows}, {r[0]: r[1] for r in vods})


def fetch_cablecast(base_url: str, marker: str) -> CablecastView:
    """The shows whose title has `marker`, and every VOD, through the paged listing API."""
    with httpx.Client(base_url=base_url.rstrip("/"), timeout=10.0, trust_env=False) as http:
        shows = {
            int(s["id"]): str(s.get("title", ""))
            for s in _pages(http, "/shows", "shows", {"search": marker})
            if marker in str(s.get("title", ""))
        }
        vods = {
            int(v["id"]): int(v["show"])
            for v in _pages(http, "/vods", "vods", {})
            if v.get("show") is not None
        }
    return CablecastView(shows, vods)


def audit_publications(
    run_dir: Path,
    database_url: str,
    cablecast_url: str | None,
    rule: Publications,
    result: AuditResult,
) -> None:
    """The publications of the run's ledger against the app's rows and Cablecast."""
    entries = read_acks(run_dir, kinds=("ack", "refused"))
    if not entries:
        return
    since = min(float(e.get("ts", 0)) for e in entries) - 5.0  # clocks of one machine
    rows = fetch_rows(database_url, since)
    cablecast = fetch_cablecast(cablecast_url, rule.marker) if cablecast_url else None
    if cablecast is None:
        result.notes.append("publications checked in the database only: no Cablecast URL")
    judge_publications(rule, entries, rows, cablecast, result)

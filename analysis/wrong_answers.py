"""Answers held to the data: a 200 that says what the store does not hold is a finding.

Two kinds, in the findings table's columns (analysis.findings.COLUMNS):

- ``wrong answer``: a read the profile checks (``[[answers]]``, workload.answer_rules)
  said what cannot be so, given what the store held (experiments.answer_truth): an empty
  list while the store held records when the run started (``[] while the database held
  12 transcriptions when the run started``), an id the store never held (before or after
  the run), a record other than the one asked for, a version ahead of its row, or at the
  row's version (or for rows that never change) a field that disagrees with it. Data
  changes during a run (uploads add files, publishing adds shows); only what cannot
  legitimately differ is judged.
- ``never stored``: a write the app acknowledged and nothing holds: a request the
  profile's ``[audit] not_durable`` names (the app keeps nothing for it by design), or a
  row the ``tables`` audit found missing. For a client both are lost writes.

Pure: observations, truth and acknowledgements in, rows out; analysis.answers_run reads
the run folder.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from workload.answer_rules import AnswerCheck

WRONG_ANSWER, NEVER_STORED = "wrong answer", "never stored"
NO_FAULT = "no fault"


def _same(told: Any, held: Any) -> bool:
    return told == held or str(told) == str(held)


def _list_problem(check: AnswerCheck, seen: Mapping[str, Any], truth: Mapping[str, Any]) -> str:
    before = truth.get("before", {}).get(check.route)
    after = truth.get("after", {}).get(check.route)
    held = int(before["count"]) if before else 0
    if seen["n"] == 0 and held:
        return f"[] while {check.where} held {held} {check.noun} when the run started"
    if before and after and before.get("complete") and after.get("complete"):
        known = {str(i) for i in (*before["ids"], *after["ids"])}
        for found in seen.get("ids") or ():
            if str(found) not in known:
                return f"{check.key} {found!r}, which {check.where} never held"
    return ""


def _item_problem(check: AnswerCheck, seen: Mapping[str, Any], truth: Mapping[str, Any]) -> str:
    asked, told = seen.get("path_id"), seen.get("id")
    if told is not None and asked is not None and not _same(told, asked):
        return f"{check.key} {told!r} answered for {asked!r}"
    rows = (truth.get("after", {}).get(check.route) or {}).get("rows", {})
    row = rows.get(str(asked))
    if row is None:
        return ""  # deleted since, or never read back: nothing to hold it to
    if check.version:
        version, held = seen.get("version"), row.get(check.version)
        if not isinstance(version, int) or not isinstance(held, int) or version < held:
            return ""  # an older state of the row, which may have said anything
        if version > held:
            return f"{check.version} {version} while its {check.table} row is at {held}"
    for name, value in (seen.get("fields") or {}).items():
        if name in row and not _same(value, row[name]):
            at = f" ({check.version} {row[check.version]})" if check.version else ""
            return f"{name} {value!r} while its {check.table} row has {row[name]!r}{at}"
    return ""


def problem(check: AnswerCheck, seen: Mapping[str, Any], truth: Mapping[str, Any]) -> str:
    """Why one observed answer cannot be right ('' if it may be), see the module doc (pure)."""
    if seen.get("n") is None:
        return ""  # not of the declared shape: the status and shape checks judge that
    if check.kind == "list":
        return _list_problem(check, seen, truth)
    return _item_problem(check, seen, truth)


def fault_at(ts: float, faults: pd.DataFrame, grace_s: float) -> str:
    """The faults active at `ts` (or up to grace_s before), "" if none (pure)."""
    if faults.empty:
        return ""
    names = [
        str(w.what) or str(w.link)
        for w in faults.itertuples(index=False)
        if float(w.start) <= ts <= float(w.end) + grace_s
    ]
    return " + ".join(names)


def _row(
    kind: str,
    endpoint: str,
    status: int,
    wrong: Sequence[tuple[float, str]],
    total: int,
    fault: str,
    t0: float,
) -> dict[str, Any]:
    first_at, detail = min(wrong)
    return {
        "kind": kind,
        "endpoint": endpoint,
        "status": status,
        "count": len(wrong),
        "requests": total,
        "share": len(wrong) / total if total else 1.0,
        "first_s": first_at - t0,
        "first_at": first_at,
        "fault": fault or NO_FAULT,
        "shape": "json",
        "detail": detail,
        "log_source": "",
        "log_line": "",
        "log_last": "",
    }


def wrong_answers(
    checks: Sequence[AnswerCheck],
    endpoints: Mapping[str, str],
    observations: Sequence[Mapping[str, Any]],
    truth: Mapping[str, Any],
    faults: pd.DataFrame,
    t0: float,
    grace_s: float = 10.0,
) -> list[dict[str, Any]]:
    """One ``wrong answer`` row per (route, fault) with wrong answers (pure).

    ``endpoints`` maps route keys to "GET /api/..." as the findings name them; the detail
    is the first wrong answer's difference, the count how many were wrong of those read.
    """
    by_route = {c.route: c for c in checks}
    wrong: dict[tuple[str, str], list[tuple[float, str]]] = {}
    read: dict[str, int] = {}
    for seen in observations:
        check = by_route.get(str(seen.get("route")))
        if check is None or seen.get("n") is None:
            continue
        read[check.route] = read.get(check.route, 0) + 1
        if why := problem(check, seen, truth):
            ts = float(seen["ts"])
            wrong.setdefault((check.route, fault_at(ts, faults, grace_s)), []).append((ts, why))
    return [
        _row(WRONG_ANSWER, endpoints[route], 200, found, read[route], fault, t0)
        for (route, fault), found in wrong.items()
    ]


def never_stored(
    not_durable: Mapping[str, str],
    acks: Sequence[Mapping[str, Any]],
    missing: Sequence[Mapping[str, Any]],
    faults: pd.DataFrame,
    t0: float,
    grace_s: float = 10.0,
) -> list[dict[str, Any]]:
    """One ``never stored`` row per acknowledged request that nothing holds (pure).

    ``not_durable``: request -> the answer field naming what it told ("" none);
    ``acks``: the ledger's acknowledgements (``ts``, ``request``, ``values``, ``status``);
    ``missing``: the tables audit's missing rows (``request``, ``id``, ``problem``).
    """
    told: dict[str, list[Mapping[str, Any]]] = {}
    for ack in acks:
        told.setdefault(str(ack.get("request")), []).append(ack)
    rows = []
    for request, answer_field in not_durable.items():
        mine = told.get(request, [])
        if not mine:
            continue
        first = min(mine, key=lambda a: float(a["ts"]))
        example = (first.get("values") or {}).get(answer_field) if answer_field else None
        named = f"; e.g. {answer_field} {example!r}" if example is not None else ""
        detail = f"acknowledged, never stored: the app keeps nothing for it{named}"
        fault = fault_at(float(first["ts"]), faults, grace_s)
        status = int(first.get("status") or 200)
        rows.append(
            _row(NEVER_STORED, request, status, [(float(first["ts"]), detail)], 1, fault, t0)
        )
        rows[-1].update(count=len(mine), requests=len(mine), share=1.0)
    lost: dict[str, list[Mapping[str, Any]]] = {}
    for entry in missing:
        lost.setdefault(str(entry["request"]), []).append(entry)
    for request, entries in lost.items():
        ts_of = {
            str(v): float(a["ts"]) for a in told.get(request, []) for v in a["values"].values()
        }
        dated = sorted((ts_of.get(str(e["id"]), t0), str(e["problem"])) for e in entries)
        at, why = dated[0]
        detail = f"acknowledged, never stored: {why}"
        total = max(len(told.get(request, [])), len(entries))
        rows.append(
            _row(
                NEVER_STORED, request, 200, [(at, detail)], total, fault_at(at, faults, grace_s), t0
            )
        )
        rows[-1].update(count=len(entries), share=len(entries) / total)
    return rows

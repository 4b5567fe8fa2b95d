"""Findings: the defects a run shows, one row per kind, in words a developer acts on.

A verdict says whether a run met its hypothesis; a finding says what is wrong with the
application: "POST /api/vod/publish/[id] answered 500 (HTML) to 42 of 42 requests, first
at 3.2 s, no fault active; the app logged: Exception on /api/vod/publish/7 [POST]".

Three kinds, judged with the route profile's ``[findings]`` rules (config/routes/*.toml):

- ``server error``: a 5xx answer while no fault was active (nor had just ended);
- ``ungraceful``: a 5xx answer during a fault (or its grace period) that is not what the
  profile expects from a route whose dependency is down (one of ``outage_status`` with a
  JSON body, e.g. a JSON 503), such as an HTML 500, nor the endpoint's steady defect (the
  same status and shape it gives with no fault active);
- ``slow``: an endpoint whose median latency outside the faults is above its limit.

Everything here is pure: the requests (capture format), fault windows and app-log records
in, a DataFrame out. The CLI (``python -m analysis findings``), the experiment runner and
the HTML report present the same table.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from analysis.app_logs import LogRecord
from analysis.causes import causes_text, with_causes
from analysis.findings_rules import Rules as Rules  # re-exported, as load_rules and profile_of
from analysis.findings_rules import load_rules as load_rules
from analysis.findings_rules import profile_of as profile_of
from analysis.log_match import LoggedRoute, route_record

SERVER_ERROR, UNGRACEFUL, SLOW = "server error", "ungraceful", "slow"
KINDS = (SERVER_ERROR, UNGRACEFUL, SLOW)
NO_FAULT = "no fault"
WORKFLOW_TYPE = "WORKFLOW"  # a timed sequence of requests, not an HTTP answer
SHAPES = ("json error", "json", "html", "text", "empty", "no answer", "unknown")
COLUMNS = (
    "kind",
    "endpoint",
    "status",
    "count",
    "requests",
    "share",
    "first_s",
    "first_at",
    "fault",
    "shape",
    "detail",
    "log_source",
    "log_line",
    "log_last",
    "log_note",  # why no line is quoted, when the logs were searched and none matched
    "signature",  # the log line without times, ids and numbers (analysis.log_match)
    "cause",  # one id per kind, fault, status, shape and signature (analysis.causes)
)
# The kinds whose rows of several routes may share one cause (one defect, many routes).
ACROSS_ROUTES = (SERVER_ERROR, UNGRACEFUL)
NO_LINE = "no line of this route (its handler or its path) in the failures' time window"
_STATUS_IN_ERROR = (
    re.compile(r"\bstatus (\d{3})\b"),  # workload/judging.py: "status 500, expected 200"
    re.compile(r"\bcode=(\d{3})\b"),  # FastHttpUser: BadStatusCode(url, code=500)
    re.compile(r"\b(\d{3}) (?:Server|Client) Error\b"),  # HttpUser: HTTPError
)
_SNIPPET = re.compile(r"\bstatus \d{3}, expected [\d/]+ ?(.*)$", re.S)


def _status_of_error(error: Any) -> int:
    if not isinstance(error, str):
        return 0
    for pattern in _STATUS_IN_ERROR:
        if m := pattern.search(error):
            return int(m.group(1))
    return 0


def error_shape(status: int, content_type: Any, body: Any) -> str:
    """What an error answer looked like: a JSON error, other JSON, HTML, text, empty (pure).

    ``body`` may be cut short (the capture keeps its first 200 characters), so a JSON
    object that no longer parses still counts as JSON when it starts like one.
    """
    if not status:
        return "no answer"
    ctype = content_type.lower() if isinstance(content_type, str) else ""
    if not isinstance(body, str):
        return "unknown" if not ctype else ("html" if "html" in ctype else "unknown")
    text = body.strip()
    if not text:
        return "empty"
    if "json" in ctype or text[:1] in "{[":
        try:
            parsed = json.loads(text)
        except ValueError:
            return "json error" if re.match(r'\{\s*"error"\s*:', text) else "json"
        return "json error" if isinstance(parsed, dict) and "error" in parsed else "json"
    if "html" in ctype or text[:1] == "<":
        return "html"
    return "text"


def answers(requests: pd.DataFrame) -> pd.DataFrame:
    """HTTP requests in capture format -> one row per answer with its status and shape (pure).

    Columns: ``method``, ``name``, ``start``, ``end`` (epoch s), ``latency_ms``, ``ok``,
    ``status`` (0: no answer or not recorded), ``shape``. Runs captured before the status
    was recorded get it from the error text, and their error body from the same text.
    """
    frame = requests
    if "type" in frame:
        frame = frame[frame["type"].astype(str) != WORKFLOW_TYPE]
    n = len(frame)

    def column(name: str) -> np.ndarray:
        return frame[name].to_numpy(dtype=object) if name in frame else np.full(n, None, object)

    ok = frame["ok"].to_numpy(dtype=bool)
    status_arr = (
        frame["status"].fillna(0).to_numpy(dtype=np.int64)
        if "status" in frame
        else np.zeros(n, np.int64)
    )
    errors, ctypes, bodies = column("error"), column("content_type"), column("body")
    shapes = np.full(n, "", dtype=object)
    # Only failures (and 5xx) are looked into, one by one: they are few.
    for i in np.flatnonzero(~ok | (status_arr >= 500)):
        error = errors[i]
        if not status_arr[i]:
            status_arr[i] = _status_of_error(error)
        body = bodies[i]
        if not isinstance(body, str) and isinstance(error, str) and (m := _SNIPPET.search(error)):
            body = m.group(1)
        shapes[i] = error_shape(int(status_arr[i]), ctypes[i], body)
    start = frame["t_start"].to_numpy(dtype=np.float64)
    latency_ms = frame["latency_us"].to_numpy(dtype=np.float64) / 1000.0
    return pd.DataFrame(
        {
            "method": frame["type"].astype(str).to_numpy() if "type" in frame else "",
            "name": frame["name"].astype(str).to_numpy(),
            "start": start,
            "end": start + latency_ms / 1000.0,
            "latency_ms": latency_ms,
            "ok": ok,
            "status": status_arr,
            "shape": shapes,
        }
    )


def fault_labels(frame: pd.DataFrame, faults: pd.DataFrame, grace_s: float) -> np.ndarray:
    """Per answer, the faults active while it was in flight (or up to grace_s before), "" if
    none; ``faults`` has epoch ``start``/``end`` and ``what`` (pure)."""
    labels = np.full(len(frame), "", dtype=object)
    if faults.empty or frame.empty:
        return labels
    start, end = frame["start"].to_numpy(), frame["end"].to_numpy()
    for window in faults.itertuples(index=False):
        hit = (end >= float(window.start)) & (start <= float(window.end) + grace_s)
        what = str(window.what) or str(window.link)
        for i in np.flatnonzero(hit):
            labels[i] = what if not labels[i] else f"{labels[i]} + {what}"
    return labels


def endpoint(method: str, name: str) -> str:
    """``GET /api/vods``: the method and the request name, unless the name has it already."""
    return name if not method or name.startswith(f"{method} ") else f"{method} {name}"


def logged_routes(frame: pd.DataFrame, rules: Rules) -> dict[tuple[str, str], LoggedRoute]:
    """Every route a log line may name: the profile's and those the run requested."""
    keys = dict.fromkeys([*rules.routes, *zip(frame["method"], frame["name"], strict=True)])
    return {(m, n): LoggedRoute(m, n, rules.handlers.get((m, n), ())) for m, n in keys}


def _log_fields(
    logs: Sequence[LogRecord],
    routes: dict[tuple[str, str], LoggedRoute],
    key: tuple[str, str],
    status: int,
    group: pd.DataFrame,
) -> tuple[str, str, str, str]:
    """source, first line, last line of the record the finding quotes, or why none."""
    if not logs:
        return "", "", "", ""
    starts, ends = group["start"].to_numpy(), group["end"].to_numpy()
    record = route_record(logs, routes[key], list(routes.values()), status, starts, ends)
    if record is None:
        return "", "", "", NO_LINE
    return record.source, record.first, record.last, ""


def _error_rows(
    frame: pd.DataFrame,
    mask: np.ndarray,
    kind: str,
    scope: np.ndarray,
    t0: float,
    rules: Rules,
    logs: Sequence[LogRecord],
    routes: dict[tuple[str, str], LoggedRoute],
) -> list[dict[str, Any]]:
    """One row per (endpoint, status, shape, fault) among the answers in `mask`."""
    if not mask.any():
        return []
    bad = frame[mask]
    in_scope = frame[scope].groupby(["method", "name"], sort=False).size()
    rows = []
    for (method, name, status, shape, fault), group in bad.groupby(
        ["method", "name", "status", "shape", "fault"], sort=False
    ):
        first = group.loc[group["start"].idxmin()]
        total = int(in_scope.get((method, name), len(group)))
        expected = "/".join(map(str, rules.outage_status)) or "none"
        detail = (
            f"expected {expected} with a JSON body during an outage"
            if kind == UNGRACEFUL
            else "5xx while no fault was active"
        )
        key = (str(method), str(name))
        source, line, last, note = _log_fields(logs, routes, key, int(status), group)
        rows.append(
            {
                "kind": kind,
                "endpoint": endpoint(str(method), str(name)),
                "status": int(status),
                "count": len(group),
                "requests": total,
                "share": len(group) / total if total else 1.0,
                "first_s": float(first["start"]) - t0,
                "first_at": float(first["start"]),
                "fault": fault or NO_FAULT,
                "shape": shape,
                "detail": detail,
                "log_source": source,
                "log_line": line,
                "log_last": last,
                "log_note": note,
            }
        )
    return rows


def _slow_rows(
    frame: pd.DataFrame, calm: np.ndarray, t0: float, rules: Rules
) -> list[dict[str, Any]]:
    rows = []
    for (method, name), group in frame[calm].groupby(["method", "name"], sort=False):
        limit = rules.slow_limit(str(method), str(name))
        if limit is None or len(group) < rules.min_requests:
            continue
        p50 = float(np.median(group["latency_ms"].to_numpy()))
        if p50 <= limit:
            continue
        slow = group[group["latency_ms"] > limit]
        first = slow.loc[slow["start"].idxmin()]
        rows.append(
            {
                "kind": SLOW,
                "endpoint": endpoint(str(method), str(name)),
                "status": int(slow["status"].mode().iloc[0]),
                "count": len(slow),
                "requests": len(group),
                "share": len(slow) / len(group),
                "first_s": float(first["start"]) - t0,
                "first_at": float(first["start"]),
                "fault": NO_FAULT,
                "shape": "",
                "detail": f"p50 {p50:.0f} ms > {limit:g} ms",
                "log_source": "",
                "log_line": "",
                "log_last": "",
                "log_note": "",
            }
        )
    return rows


def steady_answers(frame: pd.DataFrame, outside: np.ndarray) -> np.ndarray:
    """Answers the same as an error the endpoint gives with no fault active (same endpoint,
    status and shape): a route that always answers a JSON 500 (a steady defect, reported
    once as a server error) is not ungraceful under a fault for answering it again; what
    the fault changes, e.g. an HTML 500, still is (pure)."""
    keys = pd.MultiIndex.from_arrays(
        [
            frame["method"].astype(str),
            frame["name"].astype(str),
            frame["status"],
            frame["shape"].astype(str),
        ]
    )
    return np.asarray(keys.isin(keys[outside]))


def find(
    requests: pd.DataFrame,
    faults: pd.DataFrame,
    rules: Rules,
    logs: Sequence[LogRecord] = (),
    t0: float | None = None,
) -> pd.DataFrame:
    """The findings table of a run (COLUMNS; empty when nothing is wrong) (pure).

    ``requests``: capture format (analysis.load.read_requests); ``faults``: windows in
    epoch seconds (analysis.load.read_faults); ``logs``: the app's log records;
    ``t0``: the run's start (default: its first request), for ``first_s``.
    """
    frame = answers(requests)
    if frame.empty:
        return pd.DataFrame(columns=list(COLUMNS))
    start0 = float(frame["start"].min()) if t0 is None else t0
    frame["fault"] = fault_labels(frame, faults, rules.grace_s)
    faulted = frame["fault"].to_numpy() != ""
    server_error = frame["status"].to_numpy() >= 500
    graceful = np.isin(frame["status"].to_numpy(), rules.outage_status)
    if rules.error_shape == "json":
        # JSON, not necessarily an error object: a health check's 503 carries its report.
        graceful &= np.isin(frame["shape"].to_numpy(), ["json error", "json", "unknown"])
    steady = steady_answers(frame, server_error & ~faulted)
    routes = logged_routes(frame, rules)
    rows = [
        *_error_rows(
            frame, server_error & ~faulted, SERVER_ERROR, ~faulted, start0, rules, logs, routes
        ),
        *_error_rows(
            frame,
            server_error & faulted & ~graceful & ~steady,
            UNGRACEFUL,
            faulted,
            start0,
            rules,
            logs,
            routes,
        ),
        *_slow_rows(frame, ~faulted, start0, rules),
    ]
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    if table.empty:
        return table
    order = table["kind"].map({k: i for i, k in enumerate(KINDS)})
    return (
        with_causes(table, ACROSS_ROUTES)
        .assign(_order=order)
        .sort_values(["_order", "count"], ascending=[True, False], kind="stable")
        .drop(columns="_order")
        .reset_index(drop=True)
    )


# --- presentation -----------------------------------------------------------------------


def to_text(table: pd.DataFrame) -> str:
    """The findings as lines a person reads at the end of a run, one per cause (pure); the
    causes are worked out again, so a table read back from an older verdict.json works."""
    if table.empty:
        return "findings: none"
    return causes_text(with_causes(table, ACROSS_ROUTES))


def to_records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-ready rows (plain ints, floats and strings)."""
    return json.loads(table.to_json(orient="records"))

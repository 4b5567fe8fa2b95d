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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.app_logs import LogRecord, explaining_record
from analysis.load import InputError

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
)
_STATUS_IN_ERROR = (
    re.compile(r"\bstatus (\d{3})\b"),  # workload/judging.py: "status 500, expected 200"
    re.compile(r"\bcode=(\d{3})\b"),  # FastHttpUser: BadStatusCode(url, code=500)
    re.compile(r"\b(\d{3}) (?:Server|Client) Error\b"),  # HttpUser: HTTPError
)
_SNIPPET = re.compile(r"\bstatus \d{3}, expected [\d/]+ ?(.*)$", re.S)


@dataclass(frozen=True)
class Rules:
    """A profile's ``[findings]``: what counts as a defect for this application."""

    profile: str = "contract"
    outage_status: tuple[int, ...] = (503,)
    error_shape: str = "json"  # json: an answer during an outage must be JSON; any: no check
    grace_s: float = 10.0
    slow_ms: float | None = None  # median limit of every endpoint, None: no default limit
    route_slow_ms: dict[tuple[str, str], float] = field(default_factory=dict)
    min_requests: int = 5

    def slow_limit(self, method: str, name: str) -> float | None:
        return self.route_slow_ms.get((method, name), self.slow_ms)


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


def _log_fields(
    logs: Sequence[LogRecord], name: str, status: int, start: float, end: float
) -> tuple[str, str, str]:
    if not logs:
        return "", "", ""
    record = explaining_record(logs, name, status, start, end)
    if record is None:
        return "", "", ""
    return record.source, record.first, record.last


def _error_rows(
    frame: pd.DataFrame,
    mask: np.ndarray,
    kind: str,
    scope: np.ndarray,
    t0: float,
    rules: Rules,
    logs: Sequence[LogRecord],
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
        source, line, last = _log_fields(logs, name, int(status), first["start"], first["end"])
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
    rows = [
        *_error_rows(frame, server_error & ~faulted, SERVER_ERROR, ~faulted, start0, rules, logs),
        *_error_rows(
            frame,
            server_error & faulted & ~graceful & ~steady,
            UNGRACEFUL,
            faulted,
            start0,
            rules,
            logs,
        ),
        *_slow_rows(frame, ~faulted, start0, rules),
    ]
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    if table.empty:
        return table
    order = table["kind"].map({k: i for i, k in enumerate(KINDS)})
    return (
        table.assign(_order=order)
        .sort_values(["_order", "count"], ascending=[True, False], kind="stable")
        .drop(columns="_order")
        .reset_index(drop=True)
    )


# --- rules from a route profile ---------------------------------------------------------


def load_rules(profile: str) -> Rules:
    """The ``[findings]`` section of a route profile (name or path); InputError if invalid.

    Route limits are keyed by the profile's route keys (``health = 1000``), so they follow
    the route wherever its path is.
    """
    from workload.routes import ROUTES_DIR, Profile
    from workload.tomlconfig import ConfigError, load_toml

    try:
        loaded = Profile.load(profile)
        path = Path(profile) if Path(profile).suffix else ROUTES_DIR / f"{profile}.toml"
        section = load_toml(path).get("findings", {})
    except ConfigError as exc:
        raise InputError(str(exc)) from None
    where = f"{path}: [findings]"
    known = {"outage_status", "error_shape", "grace_s", "slow_ms", "route_slow_ms", "min_requests"}
    if unknown := sorted(set(section) - known):
        raise InputError(
            f"{where} has unknown keys {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    try:
        outage = tuple(int(s) for s in section.get("outage_status", [503]))
        shape = str(section.get("error_shape", "json"))
        grace = float(section.get("grace_s", 10.0))
        default_slow = section.get("slow_ms")
        slow = float(default_slow) if default_slow is not None else None
        minimum = int(section.get("min_requests", 5))
        per_route = {str(k): float(v) for k, v in section.get("route_slow_ms", {}).items()}
    except (TypeError, ValueError, AttributeError) as exc:
        raise InputError(f"{where}: {exc}") from None
    if shape not in ("json", "any"):
        raise InputError(f"{where}: error_shape {shape!r}: expected json or any")
    if grace < 0 or minimum < 1 or (slow is not None and slow <= 0):
        raise InputError(f"{where}: grace_s >= 0, min_requests >= 1 and slow_ms > 0 expected")
    route_slow: dict[tuple[str, str], float] = {}
    for key, ms in per_route.items():
        if key not in loaded.routes:
            known_routes = ", ".join(sorted(loaded.routes))
            raise InputError(
                f"{where}.route_slow_ms: {key!r} is not a route; known: {known_routes}"
            )
        route = loaded.routes[key]
        route_slow[(route.method, route.name)] = ms
    return Rules(loaded.name, outage, shape, grace, slow, route_slow, minimum)


def profile_of(meta: dict[str, Any]) -> str:
    """The route profile a run used (its Locust --routes option), else the contract."""
    options = meta.get("options")
    chosen = options.get("routes") if isinstance(options, dict) else None
    return str(chosen) if chosen else "contract"


# --- presentation -----------------------------------------------------------------------


def to_text(table: pd.DataFrame) -> str:
    """The findings as lines a person reads at the end of a run (pure)."""
    if table.empty:
        return "findings: none"
    lines = [f"findings: {len(table)}"]
    for row in table.itertuples(index=False):
        if row.kind == "leak":  # analysis.leaks: a resource's trend, no answer to count
            lines.append(f"  {row.kind:<12} {row.endpoint:<34} {row.detail}")
            continue
        status = str(row.status) + (f" ({row.shape})" if row.shape else "")
        lines.append(
            f"  {row.kind:<12} {row.endpoint:<34} {status:<18} "
            f"{row.count} of {row.requests} ({100 * row.share:.0f}%), "
            f"first at {row.first_s:.1f} s, {row.fault}; {row.detail}"
        )
        if row.log_line:
            lines.append(f"      log {row.log_source}: {row.log_line}")
            if row.log_last and row.log_last != row.log_line:
                lines.append(f"      ... {row.log_last}")
    return "\n".join(lines)


def to_records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-ready rows (plain ints, floats and strings)."""
    return json.loads(table.to_json(orient="records"))

"""Which app-log record a finding quotes: one its own route logged, in its own time window.

A finding is only as useful as the line it quotes. The nearest error in time is often a
neighbour's: with four workers, sync-status's 500 and publish's 500 are logged within the
same second, and Flask's ``Exception on /api/health [GET]`` also fits the pattern of
``GET /api/[id]``. So a record belongs to a route only when it names

- the route's handler, as the route profile declares it (``[findings.handlers]``,
  ``module:function``): loguru writes ``module:function:line``, a traceback
  ``File ".../module.py", line N, in function``; or
- a path that resolves to this route and no more specific one: ``/api/health`` is the
  health route's, not ``/api/[id]``'s, although the pattern of both matches it.

A record that names neither is nobody's, and a finding with no such record in its window
says so rather than quoting a guess.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from analysis.app_logs import LogRecord

BEFORE_S = 1.0  # a record up to this long before a failing request's start may explain it ...
AFTER_S = 2.0  # ... and up to this long after its answer
FLOOR_S = 1.0  # log times are often whole seconds: the floor may fall before the request
SIGNATURE_CHARS = 160

_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_PATH = re.compile(r"(?<![\w.:/])/[\w\-.~%/]*[\w\-~%]")
_METHOD = re.compile(r"\b(" + "|".join(_METHODS) + r")\b")


def path_of(name: str) -> str:
    """The path in a request name (``GET /api/vods/[id] (poll)`` -> ``/api/vods/[id]``)."""
    return next((word for word in name.split() if word.startswith("/")), name).split("?", 1)[0]


@dataclass(frozen=True)
class LoggedRoute:
    """A route as its log lines can name it: its method, request name and handlers."""

    method: str
    name: str  # the request name, ``/api/vod/publish/[id]``
    handlers: tuple[str, ...] = ()  # ``module:function`` (or a bare ``function``)

    @cached_property
    def path_regex(self) -> re.Pattern[str]:
        parts = [re.escape(p) for p in path_of(self.name).split("[id]")]
        return re.compile(r"[^/]+".join(parts))

    @cached_property
    def literal_segments(self) -> int:
        """How specific the route is: ``/api/health`` (2) beats ``/api/[id]`` (1)."""
        return sum(1 for s in path_of(self.name).split("/") if s and s != "[id]")

    @cached_property
    def handler_regex(self) -> re.Pattern[str] | None:
        alternatives = []
        for handler in self.handlers:
            module, _, function = handler.rpartition(":")
            f = re.escape(function)
            if module:
                m = re.escape(module)
                file = re.escape(module.replace(".", "/"))
                alternatives.append(rf"(?<![\w.]){m}:{f}:\d+")  # loguru's module:function:line
                alternatives.append(rf'{file}(?:/__init__)?\.py", line \d+, in {f}\s*$')
            else:
                alternatives.append(rf"(?<![\w.])[\w.]+:{f}:\d+")
                alternatives.append(rf'\.py", line \d+, in {f}\s*$')
        return re.compile("|".join(alternatives)) if alternatives else None


def path_pattern(name: str) -> re.Pattern[str]:
    """A request name as the app logs its path: ``/api/vods/[id]`` matches ``/api/vods/42``
    (words around the path, such as ``GET`` or ``(poll)``, are left out)."""
    parts = [re.escape(p) for p in path_of(name).split("[id]")]
    return re.compile(r"[^/\s?\"']+".join(parts) + r"(?![\w/-])")


def owners(path: str, routes: Sequence[LoggedRoute]) -> list[LoggedRoute]:
    """The routes a concrete path belongs to: of those whose pattern matches it, the most
    specific ones (pure)."""
    matching = [r for r in routes if r.path_regex.fullmatch(path)]
    if not matching:
        return []
    best = max(r.literal_segments for r in matching)
    return [r for r in matching if r.literal_segments == best]


def names_path_of(line: str, route: LoggedRoute, routes: Sequence[LoggedRoute]) -> bool:
    """Whether `line` names a path that is `route`'s; a method written on the line must be
    the route's too (``GET`` and ``POST`` of one path are two routes)."""
    methods = set(_METHOD.findall(line))
    for path in _PATH.findall(line):
        mine = [r for r in owners(path, routes) if r == route]
        if mine and (not methods or not route.method or route.method in methods):
            return True
    return False


def rank(
    record: LogRecord, route: LoggedRoute, routes: Sequence[LoggedRoute], status: int
) -> int | None:
    """How surely `record` was logged by `route` failing with `status`: 0 an error its
    handler logged or naming its path (both are the route's own: which one is quoted goes
    by time), 1 another line of its handler, 2 an access line with its path and the
    status; None: not this route's (pure)."""
    lines = record.lines or (record.first,)
    handler = route.handler_regex
    by_handler = handler is not None and any(handler.search(line) for line in lines)
    by_path = any(names_path_of(line, route, routes) for line in lines)
    if record.is_error and (by_handler or by_path):
        return 0
    if by_handler:
        return 1
    code = re.compile(rf"\b{status}\b")
    if by_path and any(code.search(line) for line in lines):
        return 2
    return None


def in_windows(times: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Per time, whether it lies in some request's window, from BEFORE_S (and FLOOR_S)
    before its start to AFTER_S after its answer; NaN times are in none (pure)."""
    if len(starts) == 0:
        return np.zeros(len(times), dtype=bool)
    order = np.argsort(starts)
    sorted_starts = starts[order]
    latest_end = np.maximum.accumulate(ends[order])
    known = ~np.isnan(times)
    k = np.searchsorted(sorted_starts, np.where(known, times, 0.0) + BEFORE_S + FLOOR_S, "right")
    reach = np.where(k > 0, latest_end[np.maximum(k - 1, 0)] + AFTER_S, -np.inf)
    return known & (k > 0) & (reach >= times)


def route_record(
    records: Sequence[LogRecord],
    route: LoggedRoute,
    routes: Sequence[LoggedRoute],
    status: int,
    starts: np.ndarray,
    ends: np.ndarray,
) -> LogRecord | None:
    """The record a finding of `route` quotes: among the records timed in the window of one
    of its failing requests (``starts``/``ends``, epoch s), the surest one of `route`'s
    (see rank), of those the nearest to its first failure (a route that fails in two
    ways at once, a JSON 500 its handler logs and an HTML 500 under a fault, has lines
    of both in its windows; the first failure is the one the finding dates); an untimed
    record only after every timed one.
    None when no record of the route is there (pure). `routes`: every route of the
    profile, `route` among them, so a path goes to the most specific route."""
    if not records:
        return None
    known = [route, *[r for r in routes if r != route]]
    times = np.array([np.nan if r.t is None else r.t for r in records], dtype=np.float64)
    timed_in = in_windows(times, np.asarray(starts, float), np.asarray(ends, float))
    first = float(np.min(starts)) if len(starts) else 0.0
    best: tuple[int, int, float, int] | None = None
    chosen: LogRecord | None = None
    for i, record in enumerate(records):
        timed = record.t is not None
        if timed and not timed_in[i]:
            continue
        kind = rank(record, route, known, status)
        if kind is None:
            continue
        key = (kind, 0 if timed else 1, abs(float(record.t or first) - first), i)
        if best is None or key < best:
            best, chosen = key, record
    return chosen


def explaining_record(
    records: Sequence[LogRecord],
    name: str,
    status: int,
    start: float,
    end: float,
    method: str = "",
    handlers: tuple[str, ...] = (),
    routes: Sequence[LoggedRoute] = (),
) -> LogRecord | None:
    """route_record for one failing request of `name` answered between start and end."""
    route = LoggedRoute(method, name, handlers)
    return route_record(records, route, routes, status, np.array([start]), np.array([end]))


# --- one signature per cause -----------------------------------------------------------

_ISO_STAMP = re.compile(
    r"\[?\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?\s?(?:Z|[+-]\d{2}:?\d{2})?\]?"
)
_CLF_STAMP = re.compile(r"\[\d{2}/[A-Z][a-z]{2}/\d{4}[: ]\d{2}:\d{2}:\d{2}(?:\s[+-]\d{4})?\]")
_LEVEL = re.compile(
    r"^[\s|\-:]*(?:\[?(?:DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL)\]?)?[\s|\-:]*(?:in \w+:)?"
)
_LOCATION = re.compile(r"\b([\w.]+:\w+):\d+\b")  # loguru's module:function:line
_UUID = re.compile(r"\b[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}\b")
_HEX = re.compile(r"\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{6,}\b")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_METHOD_PATH = re.compile(r"\b(?:" + "|".join(_METHODS) + r")\s+(?=/)")


def signature(first: str, last: str = "") -> str:
    """A log record's words without what differs between two failures of one cause: its
    time, level, line number, request path and method, ids and numbers. The exception (a
    traceback's last line) when there is one, else the first line (pure)."""
    text = last or first
    if not text:
        return ""
    text = _CLF_STAMP.sub(" ", _ISO_STAMP.sub(" ", text))
    text = _LEVEL.sub("", text.strip())
    text = _LOCATION.sub(r"\1", text)
    text = _METHOD_PATH.sub("", text)
    text = _PATH.sub("<path>", text)
    text = _UUID.sub("<id>", text)
    text = _HEX.sub("<id>", text)
    text = _NUMBER.sub("#", text)
    return " ".join(text.split())[:SIGNATURE_CHARS]

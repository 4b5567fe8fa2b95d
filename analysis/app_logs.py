"""An application's log files as timed records (which record a finding quotes: log_match).

A finding ("POST /api/vod/publish/[id] answered 500") is worth more with the line the
application logged when it happened: the Flask app's traceback, the reference stack's
"redis unavailable". Log formats differ, so a record is recognised by a timestamp near
the start of a line in one of the common shapes (Python logging's asctime, ISO 8601,
werkzeug's and Apache's ``[01/Dec/2026 09:20:00]``, gunicorn's ``[... +0000]``); lines
without one (a traceback's body) belong to the record above them.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from analysis.load import InputError

LINE_CHARS = 300  # a shown line is cut here
RECORD_LINES = 200  # lines kept per record (a traceback's end is what matters)
READ_BYTES = 50_000_000  # a log file's last bytes are read, no more
STAMP_ZONE = 80  # a record's timestamp starts within this many characters of its line

_ISO = re.compile(
    r"(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(?:[.,](\d{1,9}))?\s?(Z|[+-]\d{2}:?\d{2})?"
)
_CLF = re.compile(r"\[(\d{2}/[A-Z][a-z]{2}/\d{4})[: ](\d{2}:\d{2}:\d{2})(?:\s([+-]\d{4}))?\]")
_COLOUR = re.compile(r"\x1b\[[0-9;]*m")  # a console log's ANSI colours (loguru, uvicorn)
_ERROR = re.compile(
    r"\b(ERROR|CRITICAL|FATAL|Traceback|Exception|exception|Error|error|unavailable)\b"
)


@dataclass(frozen=True)
class LogRecord:
    """One logged event: when (epoch s, None if its line has no readable time), where,
    its first line and, for a multi-line record such as a traceback, its last line."""

    t: float | None
    source: str
    first: str
    last: str = ""
    lines: tuple[str, ...] = ()

    @property
    def is_error(self) -> bool:
        return any(_ERROR.search(line) for line in self.lines or (self.first,))

    def mentions(self, pattern: re.Pattern[str]) -> bool:
        return any(pattern.search(line) for line in self.lines or (self.first,))


def _zone(text: str | None) -> dt.tzinfo | None:
    if not text:
        return None  # local time, as Python's logging writes it
    if text == "Z":
        return dt.UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    return dt.timezone(sign * dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:4])))


def line_time(line: str) -> float | None:
    """Epoch seconds of a timestamp near the start of `line`, or None (pure)."""
    head = line[:STAMP_ZONE]
    try:
        if m := _ISO.search(head):
            day, clock, frac, zone = m.groups()
            stamp = dt.datetime.fromisoformat(f"{day}T{clock}").replace(tzinfo=_zone(zone))
            return stamp.timestamp() + (float(f"0.{frac}") if frac else 0.0)
        if m := _CLF.search(head):
            day, clock, zone = m.groups()
            stamp = dt.datetime.strptime(f"{day} {clock}", "%d/%b/%Y %H:%M:%S")
            return stamp.replace(tzinfo=_zone(zone)).timestamp()
    except ValueError:
        return None
    return None


def parse_log(text: str, source: str = "") -> list[LogRecord]:
    """Records of one log's text: a timed line starts one, untimed lines continue it; colour
    codes are dropped (pure)."""
    records: list[LogRecord] = []
    current: list[str] = []
    t: float | None = None

    def close() -> None:
        if current:
            kept = tuple(line[:LINE_CHARS] for line in current[-RECORD_LINES:])
            last = current[-1].strip()[:LINE_CHARS] if len(current) > 1 else ""
            records.append(LogRecord(t, source, current[0].strip()[:LINE_CHARS], last, kept))

    for line in _COLOUR.sub("", text).splitlines():
        if not line.strip():
            continue
        stamp = line_time(line)
        if stamp is not None or not current:
            close()
            current, t = [line], stamp
        else:
            current.append(line)
    close()
    return records


def read_logs(paths: Iterable[Path]) -> list[LogRecord]:
    """Records of every file (its last READ_BYTES); InputError names an unreadable one."""
    records: list[LogRecord] = []
    for path in paths:
        try:
            with path.open("rb") as f:
                f.seek(0, 2)
                size = f.tell()
                f.seek(max(0, size - READ_BYTES))
                text = f.read().decode("utf-8", "replace")
        except OSError as exc:
            raise InputError(f"{path}: cannot read the app log ({exc.strerror})") from exc
        records += parse_log(text, path.name)
    return records

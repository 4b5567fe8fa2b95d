"""Durations and bounds as experiment files write them: "1m30s", "< 1%", "<= 800".

Durations: "60s", "3m", "1m30s", "500ms" or a number of seconds. Bounds: `"< 1%"`,
`"<= 800"`, `"> 30%"`; for `throughput` a percentage is relative to the before phase and a
plain number is requests per second; for `p95_ms` in the during or after phase a
percentage is of the before phase's p95 ("< 150%": at most half as slow again), a plain
number milliseconds; error rates are fractions or percentages.
"""

from __future__ import annotations

import re
from typing import Any

from experiments.experiment import Bound

_BOUND = re.compile(r"^\s*(<=|>=|==|<|>|=)\s*([0-9]*\.?[0-9]+)\s*(%?)\s*$")
_DURATION_PART = re.compile(r"([0-9]*\.?[0-9]+)\s*(ms|s|m|h)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: Any) -> float:
    """ "60s", "3m", "1m30s", "500ms" or a number of seconds -> seconds (ValueError if not)."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"{value!r} is negative")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a duration")
    text = value.strip().lower()
    parts = _DURATION_PART.findall(text)
    if not parts or _DURATION_PART.sub("", text).strip():
        raise ValueError(f'"{value}" is not a duration like "60s", "3m" or "1m30s"')
    return sum(float(n) * _DURATION_UNITS[u] for n, u in parts)


def parse_bound(value: Any, metric: str) -> Bound:
    """`"< 1%"` etc. -> Bound; the meaning of % depends on the metric (see module doc)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f'{value!r} is not a bound like "< 1%" or "<= 800"')
    if isinstance(value, int | float):
        value = f"<= {value}"
    match = _BOUND.match(value)
    if not match:
        raise ValueError(f'"{value}" is not a bound like "< 1%" or "<= 800"')
    op, number, percent = match.groups()
    limit = float(number)
    if metric in ("error_rate", "other_errors"):
        if percent:
            limit /= 100.0
        elif limit > 1.0:
            raise ValueError(f'"{value}" is a fraction above 1; write a percentage like "< 5%"')
        return Bound(op, limit, text=value.strip())
    if metric == "p95_ms":  # a percentage: of the before phase's p95 (during and after only)
        if percent:
            return Bound(op, limit / 100.0, relative=True, text=f"{value.strip()} of before")
        return Bound(op, limit, text=value.strip())
    # throughput
    if percent:
        return Bound(op, limit / 100.0, relative=True, text=f"{value.strip()} of before")
    return Bound(op, limit, text=f"{value.strip()} req/s")

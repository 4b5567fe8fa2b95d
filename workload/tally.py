"""Nothing silent: every task run tallied (the tally itself is workload/coverage.py).

A task declares the profile routes it needs (``@uses``); without one of them it is
skipped, and counted as such. Each run of a task is counted as sent, skipped (with the
reason) or idle; the requests each route got are counted by the API client. What the run
does with the tally (workers to master, the judgement at quit) is workload/coverage_wiring.py.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from workload.coverage import Coverage
from workload.judging import SkippedTask

if TYPE_CHECKING:
    from workload.users import ArchivistUser

log = logging.getLogger(__name__)

COVERAGE = Coverage()
_logged_skips: set[tuple[str, str]] = set()


def uses(*route_keys: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare the profile routes a task needs: without one of them it is skipped (and
    counted as such), and a declared route that never gets a request is reported."""

    def mark(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn.locust_routes = frozenset(route_keys)  # type: ignore[attr-defined]
        return fn

    return mark


def tallied(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The task, counting each run as sent / skipped (with the reason) / did nothing."""
    needs = sorted(getattr(fn, "locust_routes", ()))

    @functools.wraps(fn)
    def run(user: ArchivistUser) -> Any:
        key = f"{type(user).__name__}.{fn.__name__}"
        tally = COVERAGE.task(key)
        tally.runs += 1
        before, finished = user.api.sent, False
        try:
            missing = [r for r in needs if not user.api.profile.has(r)]
            if missing:
                raise SkippedTask(
                    f"needs route {missing[0]!r}, not in profile {user.api.profile.name!r}"
                )
            result = fn(user)
            finished = True
            return result
        except SkippedTask as exc:
            tally.skipped[str(exc)] += 1
            if (key, str(exc)) not in _logged_skips:
                _logged_skips.add((key, str(exc)))
                log.warning("task %s skipped: %s", key, exc)
            raise
        finally:
            sent = user.api.sent - before
            tally.requests += sent
            if sent:
                tally.sent += 1
            elif finished:  # not skipped, not cut short (a stop, an error): did nothing
                tally.idle += 1

    run.__dict__["_tallied"] = True
    return run

"""Waiting at most N seconds for a coroutine, even one that is slow to cancel.

`asyncio.timeout` waits for the cancelled work to unwind, and a psycopg query on a
black-holed connection can take many seconds to unwind (it tries to cancel the query
server-side). Here the caller gets its answer on time and the cancellation finishes in
the background.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

log = logging.getLogger("archivist.api")
T = TypeVar("T")
_unwinding: set[asyncio.Task[Any]] = set()  # cancelled tasks, referenced until done


class Overdue(TimeoutError):
    """The bound passed before the work ended (not a timeout raised by the work itself)."""


def _reap(task: asyncio.Task[Any]) -> None:
    _unwinding.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.debug("abandoned task ended with %r", task.exception())


async def bounded(coro: Awaitable[T], seconds: float) -> T:
    """Result of `coro`, or Overdue (a TimeoutError) after `seconds` (the coroutine is
    cancelled)."""
    task = asyncio.ensure_future(coro)
    try:
        done, _ = await asyncio.wait({task}, timeout=seconds)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if task in done:
        return task.result()
    task.cancel()
    _unwinding.add(task)
    task.add_done_callback(_reap)
    raise Overdue(f"gave up after {seconds:g}s")

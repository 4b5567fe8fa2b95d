"""The native data plane: links forwarded by ``_splice`` (a C thread using splice(2)).

A proxied direction with no toxic costs, per chunk, a Python callback and a bytes object
on top of the read and the write; the native forwarder keeps only the two syscalls (and
keeps the bytes in the kernel), off the GIL. This module chooses the data plane
(``--data-plane`` / ``FAULTS_DATA_PLANE``, native by default when the extension is built)
and wraps the forwarder for one asyncio loop: each link gets a callback that runs on the
loop when the native side reports the link finished (EOF passed on, or an error).
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Callable
from typing import Any, NamedTuple

try:
    from faults.server._splice import Forwarder
except ImportError:  # not built (no compiler at install time, or not Linux)
    Forwarder = None

ENV = "FAULTS_DATA_PLANE"
MAX_BUSY_POLL_US = 10_000  # the extension's own limit (MAX_BUSY_POLL_US in _splice.c)
PLANES = ("python", "native")
AVAILABLE = Forwarder is not None


class DataPlaneError(ValueError):
    """The requested data plane cannot be used; the message says why."""


def choose_plane(requested: str | None = None) -> str:
    """``requested`` (the CLI flag), else $FAULTS_DATA_PLANE, else native when built."""
    source = "--data-plane"
    if requested is None:
        requested = os.environ.get(ENV) or None
        source = ENV
    if requested is None:
        return "native" if AVAILABLE else "python"
    if requested not in PLANES:
        raise DataPlaneError(f"{source} {requested!r} is not a data plane; known: python, native")
    if requested == "native" and not AVAILABLE:
        raise DataPlaneError(
            f"{source} native: the extension faults.server._splice is not built "
            "(reinstall with a C compiler: pip install -e .), or use python"
        )
    return requested


class Detached(NamedTuple):
    """What a link held when it left the native side, in stream order."""

    pending: bytes  # read from the source, not yet written: deliver these first
    eof: bool  # the source's EOF was read (after ``pending``)
    shut: bool  # ... and already passed on: the destination is shut for writing
    errno: int  # non-zero: the link failed with this error
    forwarded: int  # bytes the native side wrote to the destination in total


class NativePlane:
    """The forwarder of one event loop; ``finished`` callbacks run on that loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, busy_poll_us: int = 0) -> None:
        if Forwarder is None:
            raise DataPlaneError("the extension faults.server._splice is not built")
        self.loop = loop
        self._fwd: Any = Forwarder(busy_poll_us=busy_poll_us)
        self._callbacks: dict[int, Callable[[int], None]] = {}
        self._ids = itertools.count(1)  # never reused: a late notice cannot hit a new link
        self._notify_fd: int = self._fwd.notify_fd
        loop.add_reader(self._notify_fd, self._dispatch)

    def attach(self, fd_in: int, fd_out: int, finished: Callable[[int], None]) -> int:
        """Forward ``fd_in`` -> ``fd_out`` natively; ``finished(errno)`` when it ends."""
        link = next(self._ids)
        self._fwd.add(link, fd_in, fd_out)
        self._callbacks[link] = finished
        return link

    def detach(self, link: int) -> Detached:
        """Stop forwarding now; returns what the caller must deliver, in order."""
        self._callbacks.pop(link, None)
        return Detached(*self._fwd.detach(link))

    def forwarded(self, link: int) -> int:
        """Bytes written to the destination so far."""
        return int(self._fwd.counters(link))

    def __len__(self) -> int:
        return len(self._callbacks)

    def _dispatch(self) -> None:
        for link, errno in self._fwd.finished():
            callback = self._callbacks.get(link)
            if callback is not None:  # None: detached meanwhile, the detach saw the end
                callback(errno)

    def close(self) -> None:
        """Stop the native thread; links still attached are dropped (their fds stay open)."""
        if self._fwd.closed:
            return
        self.loop.remove_reader(self._notify_fd)
        self._callbacks.clear()
        self._fwd.close()


# One plane per event loop: the server's connections find it without it being threaded
# through every constructor, and a test process may run several servers on several loops.
_planes: dict[asyncio.AbstractEventLoop, NativePlane] = {}


def start(loop: asyncio.AbstractEventLoop, busy_poll_us: int = 0) -> NativePlane:
    plane = _planes.get(loop)
    if plane is None:
        plane = _planes[loop] = NativePlane(loop, busy_poll_us)
    return plane


def stop(loop: asyncio.AbstractEventLoop) -> None:
    plane = _planes.pop(loop, None)
    if plane is not None:
        plane.close()


def plane_of(loop: asyncio.AbstractEventLoop) -> NativePlane | None:
    """``loop``'s plane, None when it forwards in Python."""
    return _planes.get(loop)


def current() -> NativePlane | None:
    """The running loop's plane, None when it forwards in Python."""
    return _planes.get(asyncio.get_running_loop())

"""One direction of a proxied connection: a fast path, or a chain of toxic stages.

With no toxic applied (the common case) the source protocol writes straight into the
destination transport from ``data_received``: no task, no queue, no copy. Once a toxic
applies, the direction switches to a pipeline: source -> queue -> stage -> queue ->
... -> writer task -> destination. Switching either way keeps every byte in order:
the items still in flight are collected oldest first and re-fed (see ``rebuild``).

With the native data plane (``faults.server.native``) a direction with no toxic goes
further: a C thread splices it kernel to kernel while the source transport's reading is
paused. A toxic arriving detaches it, and what the native side had read but not written
is fed to the pipeline first; when the chain empties again the stream goes back to native
only once Python has written everything it holds for the destination.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import TYPE_CHECKING, Any, Protocol

from faults.server.native import Detached, NativePlane
from faults.server.pipeline import CLOSE, EOF, Chunk, ChunkQueue, Item, Marker, Stub
from faults.server.toxics.registry import closes_on_removal

if TYPE_CHECKING:
    from faults.server.model import ToxicEntry

HIGH_WATER = 1 << 20  # bytes queued in a pipeline before the source stops reading
LOW_WATER = 256 << 10

PAUSED_BY_DEST = 1
PAUSED_BY_QUEUE = 2
PAUSED_BY_NATIVE = 4  # the native plane reads the source: asyncio must not

log = logging.getLogger("faults.server")

NATIVE_RETRY = 0.005  # s between looks at the destination buffer before going native


class Owner(Protocol):
    """What a direction needs of its connection (``connection.Connection``).

    Typed here, on the lower side, so that a link never imports the connection above it.
    """

    loop: asyncio.AbstractEventLoop
    plane: NativePlane | None  # None: the Python data plane
    closed: bool

    def rng_for(self, what: str) -> random.Random: ...

    def direction_finished(self) -> None: ...

    def close(self) -> None: ...

    def reset(self) -> None: ...


class Stage:
    __slots__ = ("entry", "stub", "task")

    def __init__(self, entry: ToxicEntry, stub: Stub, task: asyncio.Task[None]) -> None:
        self.entry = entry
        self.stub = stub
        self.task = task


class Direction:
    """Moves bytes from ``src`` to ``dst`` and owns the toxic chain for one stream."""

    def __init__(
        self, conn: Owner, stream: str, src: asyncio.Transport, dst: asyncio.Transport
    ) -> None:
        self.conn = conn
        self.stream = stream
        self.src = src
        self.dst = dst
        self.fast = True
        self.received = 0  # bytes read from src (metrics)
        self.sent = 0  # bytes written to dst (metrics)
        self.queued = 0
        self.paused = 0  # bit set of PAUSED_BY_*
        self.finished = False  # EOF or close delivered to dst
        self.head: ChunkQueue | None = None  # input of the first stage
        self.tail: ChunkQueue | None = None  # input of the writer
        self.writer: asyncio.Task[None] | None = None
        self.drained: asyncio.Future[None] | None = None
        self.stages: list[Stage] = []
        self.applied: dict[str, bool] = {}
        self.toxic_state: dict[str, dict[str, Any]] = {}
        self.toxic_rngs: dict[str, random.Random] = {}
        self.draw_rng = conn.rng_for(stream)
        self.plane = conn.plane
        self.native: int | None = None  # the plane's link id while it forwards this stream
        self.want_native = False  # go native as soon as Python's writes to dst are out
        self.live = False  # set once the connection has fed its early data
        self._retry: asyncio.TimerHandle | None = None

    # ---- data from the source protocol -----------------------------------------

    def feed(self, data: bytes) -> None:
        self.received += len(data)
        if self.fast:
            self.dst.write(data)
            self.sent += len(data)
        else:
            assert self.head is not None
            self.head.put(Chunk(data, self.conn.loop.time()))

    def feed_eof(self) -> None:
        if self.fast:
            self._deliver_eof()
        else:
            assert self.head is not None
            self.head.put(EOF)

    def byte_counts(self) -> tuple[int, int]:
        """(received, sent) including what the native side forwarded."""
        native = (
            0 if self.plane is None or self.native is None else self.plane.forwarded(self.native)
        )
        return self.received + native, self.sent + native

    # ---- flow control ------------------------------------------------------------

    def add_queued(self, delta: int) -> None:
        self.queued += delta
        if delta > 0:
            if self.queued > HIGH_WATER and not self.paused & PAUSED_BY_QUEUE:
                self._pause(PAUSED_BY_QUEUE)
        elif self.paused & PAUSED_BY_QUEUE and self.queued < LOW_WATER:
            self._resume(PAUSED_BY_QUEUE)

    def dest_paused(self, paused: bool) -> None:
        if paused:
            self._pause(PAUSED_BY_DEST)
        else:
            self._resume(PAUSED_BY_DEST)
            if self.drained is not None and not self.drained.done():
                self.drained.set_result(None)

    def _pause(self, reason: int) -> None:
        if not self.paused and not self.src.is_closing():
            self.src.pause_reading()
        self.paused |= reason

    def _resume(self, reason: int) -> None:
        was = self.paused
        self.paused &= ~reason
        if was and not self.paused and not self.src.is_closing():
            self.src.resume_reading()

    # ---- the toxic chain ---------------------------------------------------------

    def rebuild(self, entries: list[ToxicEntry]) -> bool:
        """Apply the proxy's current chain for this stream; toxicity is drawn again.

        Returns True when a removed toxic asks for the connection to be closed.
        """
        if self.finished:
            return False
        names = {e.name for e in entries}
        close_after = any(
            self.applied.get(s.entry.name) and closes_on_removal(s.entry.toxic)
            for s in self.stages
            if s.entry.name not in names
        )
        for name in [n for n in self.toxic_state if n not in names]:
            del self.toxic_state[name]  # a toxic added again later starts afresh
        self.applied = {e.name: self.draw_rng.random() < e.toxicity for e in entries}
        active = [e for e in entries if self.applied[e.name]]
        if self.native is not None and not active:
            return close_after  # no toxic before, none now: stays native
        detached = self._leave_native() if self.native is not None else None
        in_flight = self._stop_stages()
        if active:
            self._start_pipeline(active, in_flight)
        else:
            self._start_fast(in_flight)
        if detached is not None:
            self._take_back(detached)
        return close_after

    def _stop_stages(self) -> list[Item]:
        """Cancel every stage; return what they held, oldest first."""
        items: list[Item] = []
        for stage in reversed(self.stages):
            stage.task.cancel()
            if stage.stub.pending is not None:
                items.append(stage.stub.pending)
                stage.stub.pending = None
            items.extend(stage.stub.input.take_all())
        self.stages = []
        return items

    def _start_fast(self, in_flight: list[Item]) -> None:
        if self.writer is not None:
            self.writer.cancel()
            self.writer = None
        backlog = self.tail.take_all() if self.tail is not None else []
        self.head = self.tail = None
        self.fast = True
        for item in backlog + in_flight:
            if not self._write(item):
                return
        self.want_native = self.plane is not None
        self.try_native()

    def _start_pipeline(self, active: list[ToxicEntry], in_flight: list[Item]) -> None:
        if self.tail is None:
            self.tail = ChunkQueue(self)
            self.writer = self.conn.loop.create_task(self._write_loop())
        self.fast = False
        self._cancel_native_wish()
        head = ChunkQueue(self)
        for item in in_flight:
            head.put(item)
        self.head = queue = head
        for entry in active:
            output = ChunkQueue(self) if entry is not active[-1] else self.tail
            stub = Stub(
                queue,
                output,
                self._toxic_rng(entry.name),
                self.toxic_state.setdefault(entry.name, {}),
                self.conn.reset,
            )
            task = self.conn.loop.create_task(_run_stage(entry.toxic, stub))
            self.stages.append(Stage(entry, stub, task))
            queue = output

    def _toxic_rng(self, name: str) -> random.Random:
        rng = self.toxic_rngs.get(name)
        if rng is None:
            rng = self.toxic_rngs[name] = self.conn.rng_for(f"{self.stream}/{name}")
        return rng

    # ---- the native data plane ------------------------------------------------------

    def try_native(self) -> None:
        """Hand the stream to the native plane if Python holds nothing more for ``dst``."""
        if not self.want_native or not self.live or self.finished or self.conn.closed:
            return
        if self.src.is_closing() or self.dst.is_closing():
            return
        if self.dst.get_write_buffer_size():
            # Bytes Python wrote are still queued for dst and must go first: look again soon.
            if self._retry is None:
                self._retry = self.conn.loop.call_later(NATIVE_RETRY, self._retry_native)
            return
        assert self.plane is not None
        self._cancel_native_wish()
        try:
            link = self.plane.attach(_fileno(self.src), _fileno(self.dst), self._native_ended)
        except OSError as exc:  # out of fds, say: this stream just stays on the Python path
            log.warning("%s: native forwarding unavailable: %s", self.stream, exc)
            return
        # Paused before the loop runs again, so asyncio never reads what the plane reads.
        self._pause(PAUSED_BY_NATIVE)
        self.native = link

    def _retry_native(self) -> None:
        self._retry = None
        self.try_native()

    def _cancel_native_wish(self) -> None:
        self.want_native = False
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None

    def _leave_native(self) -> Detached:
        assert self.plane is not None and self.native is not None
        detached = self.plane.detach(self.native)
        self.native = None
        self.received += detached.forwarded
        self.sent += detached.forwarded
        return detached

    def _take_back(self, detached: Detached) -> None:
        """Continue in Python where the native side stopped: its bytes first, then its end."""
        if detached.pending:
            self.feed(detached.pending)
        if detached.errno:
            self.conn.close()  # what connection_lost does on the Python path
        elif detached.shut:
            # The native side passed the EOF on already; a second shutdown could fail.
            self.finished = True
            self.conn.direction_finished()
        elif detached.eof:
            self.feed_eof()  # the source is at EOF: its reading stays paused
        else:
            self._resume(PAUSED_BY_NATIVE)

    def _native_ended(self, errno: int) -> None:
        """The native side passed the source's EOF on, or failed with ``errno``."""
        if self.native is not None:
            self._take_back(self._leave_native())

    # ---- the destination -----------------------------------------------------------

    async def _write_loop(self) -> None:
        assert self.tail is not None
        while True:
            item = await self.tail.get()
            if not self._write(item):
                return
            if self.paused & PAUSED_BY_DEST:
                self.drained = self.conn.loop.create_future()
                await self.drained

    def _write(self, item: Item) -> bool:
        """Deliver one item to the destination; False once the stream has ended."""
        if type(item) is Chunk:
            if not self.dst.is_closing():
                self.dst.write(item.data)
                self.sent += len(item.data)
            return True
        if item is EOF:
            self._deliver_eof()
        elif item is CLOSE:
            self.finished = True
            self.conn.close()
        return False

    def _deliver_eof(self) -> None:
        self.finished = True
        if not self.dst.is_closing() and self.dst.can_write_eof():
            self.dst.write_eof()
        self.conn.direction_finished()

    def stop(self) -> None:
        """Cancel all tasks; the connection is going away (detach before its fds close)."""
        self._cancel_native_wish()
        if self.native is not None:
            pending = self._leave_native().pending
            self.received += len(pending)
            if pending and not self.dst.is_closing():
                self.dst.write(pending)  # the close flushes it, as on the Python path
                self.sent += len(pending)
        self.finished = True
        for stage in self.stages:
            stage.task.cancel()
        self.stages = []
        if self.writer is not None:
            self.writer.cancel()
            self.writer = None


def _fileno(transport: asyncio.Transport) -> int:
    return int(transport.get_extra_info("socket").fileno())


async def _run_stage(toxic: Any, stub: Stub) -> None:
    await toxic.pipe(stub)
    if stub.closed:
        return
    # The toxic returned at the end of the stream: pass the marker (or any leftover) on.
    pending = stub.pending
    stub.pending = None
    if pending is not None:
        stub.output.put(pending)
        if isinstance(pending, Marker):
            return
    while (chunk := await stub.next()) is not None:
        stub.send(chunk)
    if stub.pending is not None:
        stub.output.put(stub.pending)
        stub.pending = None

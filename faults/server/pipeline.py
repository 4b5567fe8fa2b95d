"""Chunks, queues and the stub a toxic reads from and writes to.

A link direction with toxics is a chain of stages joined by ``ChunkQueue``s. Every
queue pops an item only after its reader wakes, and a stage keeps the item it is
working on in ``Stub.pending``; so a stage task can be cancelled at any ``await``
and the chain rebuilt around it without losing or reordering a byte.

This is the whole of what a toxic sees, so it imports nothing of the server: the
direction that owns the queues (``link``) comes in as a ``Flow``, and the connection's
reset as a plain callable.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(slots=True)
class Chunk:
    """Bytes read from one socket, stamped with the loop time of the read."""

    data: bytes
    read_at: float


class Marker:
    """End of a stream travelling through the chain behind the data before it."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


EOF = Marker("eof")  # the sender closed its side: half-close the receiver after the data
CLOSE = Marker("close")  # a toxic ended the connection: close it once the data ahead is out

Item = Chunk | Marker


class Flow(Protocol):
    """Where a queue reports the bytes it holds: the flow control of its direction."""

    def add_queued(self, delta: int) -> None: ...


class ChunkQueue:
    """Unbounded FIFO whose byte total feeds the direction's flow control."""

    __slots__ = ("_items", "_owner", "_waiter")

    def __init__(self, owner: Flow) -> None:
        self._items: deque[Item] = deque()
        self._owner = owner
        self._waiter: asyncio.Future[None] | None = None

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: Item) -> None:
        self._items.append(item)
        if type(item) is Chunk:
            self._owner.add_queued(len(item.data))
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> Item:
        while not self._items:
            waiter = asyncio.get_running_loop().create_future()
            self._waiter = waiter
            try:
                await waiter
            finally:
                self._waiter = None
        # Popped only after waking: a cancelled reader never takes an item with it.
        item = self._items.popleft()
        if type(item) is Chunk:
            self._owner.add_queued(-len(item.data))
        return item

    def take_all(self) -> list[Item]:
        items = list(self._items)
        self._items.clear()
        size = sum(len(i.data) for i in items if type(i) is Chunk)
        if size:
            self._owner.add_queued(-size)
        return items


class Stub:
    """What a toxic sees of its link: an input, an output and per-connection state."""

    __slots__ = ("_abort", "closed", "input", "output", "pending", "rng", "state")

    def __init__(
        self,
        input_queue: ChunkQueue,
        output_queue: ChunkQueue,
        rng: random.Random,
        state: dict[str, Any],
        abort: Callable[[], None],
    ) -> None:
        self.input = input_queue
        self.output = output_queue
        self.rng = rng  # per connection, direction and toxic: repeatable with --seed
        self.state = state  # survives chain rebuilds, e.g. limit_data's byte count
        self.pending: Item | None = None
        self.closed = False
        self._abort = abort  # the connection's TCP reset, for ``reset``

    @staticmethod
    def now() -> float:
        return asyncio.get_running_loop().time()

    async def next(self) -> Chunk | None:
        """The next chunk, or None when the stream ended (the toxic should return)."""
        item = await self.input.get()
        self.pending = item
        return item if type(item) is Chunk else None

    def send(self, chunk: Chunk, rest: Chunk | None = None) -> None:
        """Forward ``chunk``; ``rest`` is what is still held back from the pending chunk."""
        self.output.put(chunk)
        self.pending = rest

    async def send_at(self, chunk: Chunk, when: float, rest: Chunk | None = None) -> None:
        """Forward ``chunk`` at loop time ``when`` (at once if that is past)."""
        delay = when - self.now()
        if delay > 0:
            await asyncio.sleep(min(delay, 1e9))
        self.send(chunk, rest)

    def drop(self) -> None:
        """Swallow the pending chunk."""
        self.pending = None

    def close(self) -> None:
        """Close the connection once the data already forwarded is delivered."""
        self.closed = True
        self.pending = None
        self.output.put(CLOSE)

    def reset(self) -> None:
        """Abort the connection with a TCP reset, now."""
        self.closed = True
        self.pending = None
        self._abort()

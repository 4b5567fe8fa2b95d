"""A proxied TCP connection: the client socket, the upstream socket, two directions."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from typing import TYPE_CHECKING, Protocol, cast

from faults.server import native
from faults.server.link import Direction

if TYPE_CHECKING:
    from faults.server.model import ToxicEntry

WRITE_HIGH_WATER = 256 << 10  # destination buffer size at which the source pauses
CLOSE_GRACE = 2.0  # seconds a closing socket may spend flushing before it is aborted


class Owner(Protocol):
    """What a connection needs of its proxy (``proxy.Proxy``).

    Typed here, on the lower side, so that a connection never imports the proxy above it.
    """

    connections: set[Connection]  # the open ones; a connection adds itself on start

    def next_ordinal(self) -> int: ...

    def rng_for(self, what: str) -> random.Random: ...

    def upstream_address(self) -> tuple[str, int]: ...

    def chain(self, stream: str) -> list[ToxicEntry]: ...

    def forget(self, conn: Connection) -> None: ...


def _tune(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class Side(asyncio.Protocol):
    """Protocol of one socket; reads feed ``out``, write pressure pauses ``inbound``."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.transport: asyncio.Transport | None = None
        self.out: Direction | None = None
        self.inbound: Direction | None = None
        # What arrived before both sockets were up (uvloop may read before we pause it).
        self.early: list[bytes] = []
        self.early_eof = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport; they implement it.
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        _tune(transport)
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)

    def data_received(self, data: bytes) -> None:
        # The hot path: inlined Direction.feed for the no-toxic case.
        out = self.out
        if out is None:
            self.early.append(data)
            if self.transport is not None:
                self.transport.pause_reading()
            return
        if out.fast:
            n = len(data)
            out.dst.write(data)
            out.received += n
            out.sent += n
            if out.want_native:
                out.try_native()
        else:
            out.feed(data)

    def eof_received(self) -> bool:
        if self.out is None:
            self.early_eof = True
        else:
            self.out.feed_eof()
        return True  # keep our write side open: TCP half-close passes through

    def pause_writing(self) -> None:
        if self.inbound is not None:
            self.inbound.dest_paused(True)

    def resume_writing(self) -> None:
        if self.inbound is not None:
            self.inbound.dest_paused(False)

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn.side_lost(self)


class ClientSide(Side):
    """The accepted socket: holds reading until the upstream connection is up."""

    def __init__(self, proxy: Owner) -> None:
        super().__init__(Connection(proxy))
        self.conn.client = self

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        assert self.transport is not None
        self.transport.pause_reading()
        self.conn.start()


class Connection:
    def __init__(self, proxy: Owner) -> None:
        self.proxy = proxy
        self.loop = asyncio.get_running_loop()
        self.ordinal = proxy.next_ordinal()
        self.client: ClientSide | None = None
        self.upstream: Side | None = None
        self.up: Direction | None = None  # client -> upstream
        self.down: Direction | None = None  # upstream -> client
        self.closed = False
        self.plane = native.current()  # None: the Python data plane
        self._connecting: asyncio.Task[None] | None = None

    def rng_for(self, what: str) -> random.Random:
        return self.proxy.rng_for(f"{self.ordinal}/{what}")

    def start(self) -> None:
        self.proxy.connections.add(self)
        self._connecting = self.loop.create_task(self._connect())

    async def _connect(self) -> None:
        host, port = self.proxy.upstream_address()
        try:
            _, side = await self.loop.create_connection(lambda: Side(self), host, port)
        except OSError:
            self.close()
            return
        self.upstream = side
        if self.closed:
            if side.transport is not None:
                side.transport.close()
            return
        assert self.client is not None and self.client.transport is not None
        assert side.transport is not None
        client_t, upstream_t = self.client.transport, side.transport
        self.up = Direction(self, "upstream", client_t, upstream_t)
        self.down = Direction(self, "downstream", upstream_t, client_t)
        self.client.out = side.inbound = self.up
        side.out = self.client.inbound = self.down
        self.apply_toxics()
        for source, direction in ((self.client, self.up), (side, self.down)):
            for data in source.early:
                direction.feed(data)
            source.early.clear()
            if source.early_eof:
                direction.feed_eof()
            elif not self.closed and source.transport is not None:
                source.transport.resume_reading()
        # Only now, with the early bytes out, may a direction go native (which pauses reading).
        for direction in (self.up, self.down):
            direction.live = True
            direction.try_native()

    def apply_toxics(self) -> None:
        """(Re)build both chains from the proxy's toxics; draws toxicity again."""
        if self.up is None or self.down is None or self.closed:
            return
        close = self.up.rebuild(self.proxy.chain("upstream"))
        close |= self.down.rebuild(self.proxy.chain("downstream"))
        if close:
            self.close()

    def direction_finished(self) -> None:
        if (
            self.up is not None
            and self.down is not None
            and self.up.finished
            and self.down.finished
        ):
            self.close()

    def _transports(self) -> list[asyncio.Transport]:
        sides = (self.client, self.upstream)
        return [s.transport for s in sides if s is not None and s.transport is not None]

    def _stop(self) -> bool:
        if self.closed:
            return False
        self.closed = True
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()
        for direction in (self.up, self.down):
            if direction is not None:
                direction.stop()
        self.proxy.forget(self)
        return True

    def close(self) -> None:
        """Close both sockets after flushing what they hold; abort them if that stalls."""
        if not self._stop():
            return
        transports = self._transports()
        for transport in transports:
            transport.close()
        self.loop.call_later(CLOSE_GRACE, _abort_all, transports)

    def reset(self) -> None:
        """Abort both sockets with SO_LINGER 0 so the peers see a TCP RST."""
        self._stop()
        for transport in self._transports():
            sock = transport.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()

    def side_lost(self, side: Side) -> None:
        self.close()


def _abort_all(transports: list[asyncio.Transport]) -> None:
    for transport in transports:
        transport.abort()  # a no-op for a transport that already finished closing

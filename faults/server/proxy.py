"""A proxy: a listener, its open connections and its toxic chains."""

from __future__ import annotations

import asyncio
import random
import socket
from typing import TYPE_CHECKING, Any

from faults.server.connection import ClientSide
from faults.server.errors import ApiError
from faults.server.model import ProxySpec, ToxicEntry, split_address

if TYPE_CHECKING:
    from faults.server.connection import Connection

BACKLOG = 1024


def format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def resolve_listen(listen: str) -> tuple[str, int]:
    """``localhost:0`` -> ("127.0.0.1", 0): what the listener will bind to."""
    host, port = split_address(listen, "listen")
    if not host:
        return "0.0.0.0", port
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise ApiError(400, f"bad request body: listen host {host!r}: {exc}") from None
    infos.sort(key=lambda info: info[0] != socket.AF_INET)  # IPv4 first, as Go does
    return str(infos[0][4][0]), port


class Proxy:
    def __init__(self, spec: ProxySpec, seed: int | None) -> None:
        self.name = spec.name
        self.listen = spec.listen
        self.upstream = spec.upstream
        self.enabled = False
        self.toxics: dict[str, ToxicEntry] = {}
        self.connections: set[Connection] = set()
        self.server: asyncio.AbstractServer | None = None
        self.seed = seed
        self._ordinal = 0
        # bytes of connections already closed, per stream: [received, sent]
        self.closed_bytes = {"upstream": [0, 0], "downstream": [0, 0]}

    # ---- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        if self.server is not None:
            return
        host, port = await resolve_listen(self.listen)
        loop = asyncio.get_running_loop()
        try:
            self.server = await loop.create_server(
                lambda: ClientSide(self), host, port, reuse_address=True, backlog=BACKLOG
            )
        except OSError as exc:
            raise ApiError(
                500, f"listen tcp {format_address(host, port)}: {exc.strerror or exc}"
            ) from None
        bound = self.server.sockets[0].getsockname()
        self.listen = format_address(bound[0], bound[1])
        self.enabled = True

    async def stop(self) -> None:
        """Close the listener and every open connection: new connects are refused."""
        self.enabled = False
        server, self.server = self.server, None
        if server is not None:
            server.close()
        for conn in list(self.connections):
            conn.close()
        # Let the loop release the listening socket so the port can be bound again at once.
        for _ in range(3):
            await asyncio.sleep(0)

    # ---- used by connections -----------------------------------------------------------

    def next_ordinal(self) -> int:
        self._ordinal += 1
        return self._ordinal

    def rng_for(self, what: str) -> random.Random:
        if self.seed is None:
            return random.Random()
        return random.Random(f"{self.seed}/{self.name}/{what}")

    def upstream_address(self) -> tuple[str, int]:
        return split_address(self.upstream, "upstream")

    def forget(self, conn: Connection) -> None:
        self.connections.discard(conn)
        for direction in (conn.up, conn.down):
            if direction is not None:
                received, sent = direction.byte_counts()
                totals = self.closed_bytes[direction.stream]
                totals[0] += received
                totals[1] += sent

    # ---- toxics --------------------------------------------------------------------------

    def chain(self, stream: str) -> list[ToxicEntry]:
        return [t for t in self.toxics.values() if t.stream == stream]

    def set_toxics(self, toxics: dict[str, ToxicEntry]) -> None:
        """Replace the toxics and re-chain every open connection (bounded, no awaits)."""
        self.toxics = toxics
        for conn in list(self.connections):
            conn.apply_toxics()

    def toxics_json(self) -> list[dict[str, Any]]:
        return [t.to_json() for s in ("upstream", "downstream") for t in self.chain(s)]

    def bytes_total(self) -> dict[str, tuple[int, int]]:
        totals = {s: list(v) for s, v in self.closed_bytes.items()}
        for conn in self.connections:
            for direction in (conn.up, conn.down):
                if direction is not None:
                    received, sent = direction.byte_counts()
                    totals[direction.stream][0] += received
                    totals[direction.stream][1] += sent
        return {s: (v[0], v[1]) for s, v in totals.items()}

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled,
            "toxics": self.toxics_json(),
        }

"""limit_data: forward ``bytes`` bytes on this link, then close the connection."""

from __future__ import annotations

from dataclasses import dataclass

from faults.server.pipeline import Chunk, Stub
from faults.server.toxics.registry import attr, toxic


@toxic("limit_data")
@dataclass
class LimitData:
    bytes: int = attr()

    async def pipe(self, stub: Stub) -> None:
        # The count lives in stub.state so a chain rebuild does not restart it.
        sent = stub.state.setdefault("sent", 0)
        while sent < self.bytes:
            chunk = await stub.next()
            if chunk is None:
                return
            allowed = chunk.data[: self.bytes - sent]
            sent += len(allowed)
            stub.state["sent"] = sent
            stub.send(Chunk(allowed, chunk.read_at))
        stub.close()

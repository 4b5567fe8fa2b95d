"""reset_peer: on the first data, wait ``timeout`` ms, then abort with a TCP RST."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from faults.server.pipeline import Stub
from faults.server.toxics.registry import attr, toxic


@toxic("reset_peer")
@dataclass
class ResetPeer:
    timeout: int = attr()  # ms

    async def pipe(self, stub: Stub) -> None:
        if await stub.next() is None:
            return
        stub.drop()
        await asyncio.sleep(self.timeout / 1000.0)
        stub.reset()

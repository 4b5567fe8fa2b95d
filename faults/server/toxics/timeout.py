"""timeout: swallow data; close after ``timeout`` ms of silence (0 holds forever).

Removing it closes the connections it held, as Toxiproxy does: they are stuck anyway.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from faults.server.pipeline import Stub
from faults.server.toxics.registry import attr, toxic


@toxic("timeout")
@dataclass
class Timeout:
    timeout: int = attr()  # ms

    closes_on_removal = True

    async def pipe(self, stub: Stub) -> None:
        while True:
            try:
                async with asyncio.timeout(self.timeout / 1000.0 if self.timeout else None):
                    chunk = await stub.next()
            except TimeoutError:
                stub.close()
                return
            if chunk is None:
                return
            stub.drop()

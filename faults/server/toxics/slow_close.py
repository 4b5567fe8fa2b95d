"""slow_close: data passes; when the sender closes, the close is held for ``delay`` ms."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from faults.server.pipeline import Stub
from faults.server.toxics.registry import attr, toxic


@toxic("slow_close")
@dataclass
class SlowClose:
    delay: int = attr()  # ms

    async def pipe(self, stub: Stub) -> None:
        while (chunk := await stub.next()) is not None:
            stub.send(chunk)
        # The end-of-stream marker stays pending while we wait, then moves on.
        await asyncio.sleep(self.delay / 1000.0)

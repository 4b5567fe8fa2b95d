"""latency: each chunk is delivered latency +/- jitter ms after it was read."""

from __future__ import annotations

import random
from dataclasses import dataclass

from faults.server.pipeline import Stub
from faults.server.toxics.registry import attr, toxic


@toxic("latency")
@dataclass
class Latency:
    latency: int = attr()  # ms
    jitter: int = attr()  # ms

    def delay(self, rng: random.Random) -> float:
        jitter = rng.uniform(-self.jitter, self.jitter) if self.jitter else 0.0
        return max(0.0, self.latency + jitter) / 1000.0

    async def pipe(self, stub: Stub) -> None:
        # Measured from the read, not from the previous send: delays never add up.
        while (chunk := await stub.next()) is not None:
            await stub.send_at(chunk, chunk.read_at + self.delay(stub.rng))

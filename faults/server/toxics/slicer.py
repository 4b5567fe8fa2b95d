"""slicer: cut data into pieces of average_size +/- size_variation bytes, ``delay`` us apart."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from faults.server.pipeline import Chunk, Stub
from faults.server.toxics.registry import attr, toxic

YIELD_EVERY = 256


@toxic("slicer")
@dataclass
class Slicer:
    average_size: int = attr()  # bytes
    size_variation: int = attr()  # bytes
    delay: int = attr()  # microseconds

    def piece_size(self, stub: Stub) -> int:
        variation = min(self.size_variation, max(self.average_size - 1, 0))
        spread = stub.rng.randint(-variation, variation) if variation else 0
        return max(1, self.average_size + spread)

    async def pipe(self, stub: Stub) -> None:
        while (chunk := await stub.next()) is not None:
            data = chunk.data
            when = stub.now()
            pieces = 0
            while data:
                size = self.piece_size(stub)
                piece, data = data[:size], data[size:]
                if pieces:
                    when += self.delay / 1e6
                pieces += 1
                rest = Chunk(data, chunk.read_at) if data else None
                await stub.send_at(Chunk(piece, chunk.read_at), when, rest)
                if not pieces % YIELD_EVERY:
                    await asyncio.sleep(0)  # tiny pieces, no delay: let the loop breathe

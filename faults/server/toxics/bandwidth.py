"""bandwidth: throttle to ``rate`` KB/s (1 KB = 1000 bytes, as Toxiproxy); 0 is no limit.

A negative rate is refused like every other negative attribute (Toxiproxy accepts it,
then panics on the first chunk)."""

from __future__ import annotations

from dataclasses import dataclass

from faults.server.pipeline import Chunk, Stub
from faults.server.toxics.registry import attr, toxic

SLICE_SECONDS = 0.1  # big chunks go out in 100 ms slices so the rate stays smooth


@toxic("bandwidth")
@dataclass
class Bandwidth:
    rate: int = attr()  # KB/s

    async def pipe(self, stub: Stub) -> None:
        # A virtual clock: when the link is next free. Sleeping to absolute times keeps
        # timer slack from accumulating over a long transfer.
        free_at = stub.now()
        while (chunk := await stub.next()) is not None:
            if self.rate == 0:
                stub.send(chunk)
                continue
            per_second = self.rate * 1000
            free_at = max(free_at, stub.now())
            data = chunk.data
            while data:
                size = max(1, int(per_second * SLICE_SECONDS))
                piece, data = data[:size], data[size:]
                free_at += len(piece) / per_second
                rest = Chunk(data, chunk.read_at) if data else None
                await stub.send_at(Chunk(piece, chunk.read_at), free_at, rest)

"""Many connections at once: concurrency, toxic removal under load, disable under load."""

from __future__ import annotations

import asyncio
import contextlib
import time

import httpx

from tests.faults.server.conftest import EchoServer, add_proxy, add_toxic
from tests.faults.server.tcp import address


async def open_many(
    listen: str, count: int
) -> list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    host, port = address(listen)
    return list(await asyncio.gather(*(asyncio.open_connection(host, port) for _ in range(count))))


async def ping(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, payload: bytes) -> None:
    writer.write(payload)
    assert await reader.readexactly(len(payload)) == payload


async def close_all(conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]) -> None:
    for _, writer in conns:
        writer.close()
    await asyncio.gather(*(w.wait_closed() for _, w in conns), return_exceptions=True)


def test_five_hundred_concurrent_connections(api: httpx.Client, echo: EchoServer) -> None:
    listen = add_proxy(api, "many", echo.address)

    async def main() -> None:
        conns = await open_many(listen, 500)
        try:
            for round_ in range(3):
                await asyncio.wait_for(
                    asyncio.gather(
                        *(ping(r, w, f"{i}:{round_};".encode()) for i, (r, w) in enumerate(conns))
                    ),
                    timeout=30,
                )
            connections = [
                line
                for line in api.get("/metrics").text.splitlines()
                if line.startswith('toxiproxy_proxy_open_connections{proxy="many"}')
            ]
            assert connections == ['toxiproxy_proxy_open_connections{proxy="many"} 500.0']
        finally:
            await close_all(conns)

    asyncio.run(main())


def test_removing_a_toxic_under_load_is_bounded_and_traffic_goes_on(
    api: httpx.Client, echo: EchoServer
) -> None:
    listen = add_proxy(api, "busy", echo.address)
    add_toxic(api, "busy", "latency", "downstream", latency=20, jitter=5)
    add_toxic(api, "busy", "slicer", "upstream", average_size=64, size_variation=32, delay=100)
    counts = [0] * 200
    stop = asyncio.Event()

    async def traffic(
        index: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        payload = bytes([index % 256]) * 512
        while not stop.is_set():
            await asyncio.wait_for(ping(reader, writer, payload), timeout=10)
            counts[index] += 1

    async def main() -> float:
        conns = await open_many(listen, 200)
        tasks = [asyncio.create_task(traffic(i, r, w)) for i, (r, w) in enumerate(conns)]
        try:
            deadline = time.monotonic() + 20
            while min(counts) == 0 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert min(counts) > 0, f"{counts.count(0)} of 200 connections never got an echo"
            start = time.perf_counter()
            async with httpx.AsyncClient(base_url=str(api.base_url)) as client:
                first = await client.delete("/proxies/busy/toxics/latency_downstream")
                second = await client.delete("/proxies/busy/toxics/slicer_upstream")
            took = time.perf_counter() - start
            assert (first.status_code, second.status_code) == (204, 204)
            before = list(counts)
            # Every connection gets further after the removal: none broke or stalled.
            deadline = time.monotonic() + 20
            while not all(after > was for after, was in zip(counts, before, strict=True)):
                stuck = sum(after <= was for after, was in zip(counts, before, strict=True))
                assert time.monotonic() < deadline, f"{stuck} connections stalled after removal"
                if any(task.done() for task in tasks):
                    break  # a connection failed: the finally below raises its error
                await asyncio.sleep(0.05)
            return took
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            for task in tasks:
                task.result()  # no connection broke or stalled
            await close_all(conns)

    took = asyncio.run(main())
    print(f"removal took {took:.3f}s")
    assert took < 5.0  # the removal does not wait for 200 busy connections to go quiet


def test_disable_under_load_closes_every_connection(api: httpx.Client, echo: EchoServer) -> None:
    listen = add_proxy(api, "down", echo.address)

    async def main() -> None:
        conns = await open_many(listen, 100)
        try:
            await asyncio.gather(*(ping(r, w, b"x" * 100) for r, w in conns))
            assert api.patch("/proxies/down", json={"enabled": False}).status_code == 200
            for reader, _ in conns:
                with contextlib.suppress(ConnectionResetError):
                    assert await asyncio.wait_for(reader.read(), timeout=5) == b""
            try:
                await open_many(listen, 1)
            except ConnectionRefusedError:
                pass
            else:
                raise AssertionError("a disabled proxy accepted a connection")
        finally:
            await close_all(conns)
        api.patch("/proxies/down", json={"enabled": True})
        again = await open_many(listen, 10)
        await asyncio.gather(*(ping(r, w, b"back") for r, w in again))
        await close_all(again)

    asyncio.run(main())

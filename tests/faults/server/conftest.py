"""Fixtures: a real fault server (in-process thread), a real echo upstream, HTTP client."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import threading
from collections.abc import Iterator
from typing import cast

import httpx
import pytest

from faults.server.app import Options, new_event_loop, serve


class LoopThread:
    """An asyncio loop on a daemon thread running one coroutine until stopped."""

    def __init__(self) -> None:
        self.loop = new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: object, timeout: float = 10) -> object:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)  # type: ignore[arg-type]

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        with contextlib.suppress(Exception):
            self.loop.close()


class FaultServer:
    """The fault server on its own loop thread; `data_plane` None is the server's default."""

    def __init__(self, seed: int | None = None, data_plane: str | None = None) -> None:
        self.thread = LoopThread()
        self.stop_event: asyncio.Event | None = None
        ready = threading.Event()
        self.url = ""

        def on_ready(host: str, port: int) -> None:
            self.url = f"http://{host}:{port}"
            ready.set()

        async def main() -> None:
            self.stop_event = asyncio.Event()
            options = Options(port=0, seed=seed, data_plane=data_plane)
            await serve(options, ready=on_ready, stop=self.stop_event)

        self.future = asyncio.run_coroutine_threadsafe(main(), self.thread.loop)
        if not ready.wait(10):
            raise RuntimeError(f"fault server did not start: {self.future}")

    def stop(self) -> None:
        if self.stop_event is not None:
            self.thread.loop.call_soon_threadsafe(self.stop_event.set)
        with contextlib.suppress(Exception):
            self.future.result(10)
        self.thread.close()


class EchoServer:
    """Echoes every byte back (after an optional greeting); closes when the client half-closes."""

    def __init__(self, greeting: bytes = b"") -> None:
        self.thread = LoopThread()

        async def start() -> asyncio.Server:
            return await self.thread.loop.create_server(
                lambda: EchoProtocol(greeting), "127.0.0.1", 0, backlog=1024
            )

        self.server = cast(asyncio.Server, self.thread.run(start()))
        self.port = self.server.sockets[0].getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.thread.loop.call_soon_threadsafe(self.server.close)
        self.thread.close()


class EchoProtocol(asyncio.Protocol):
    def __init__(self, greeting: bytes) -> None:
        self.greeting = greeting

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        if self.greeting:
            self.transport.write(self.greeting)

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)

    def eof_received(self) -> bool:
        self.transport.close()  # flushes what is left, then FIN
        return False


@pytest.fixture(scope="session", autouse=True)
def _raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 8192) if hard != resource.RLIM_INFINITY else 8192
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


@pytest.fixture(scope="session")
def fault_server() -> Iterator[FaultServer]:
    server = FaultServer(seed=None)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def echo() -> Iterator[EchoServer]:
    server = EchoServer()
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def tidy_client(server: FaultServer) -> Iterator[httpx.Client]:
    """HTTP client on a shared server; every proxy made through it is deleted afterwards."""
    with httpx.Client(base_url=server.url, timeout=10) as client:
        try:
            yield client
        finally:
            for name in client.get("/proxies").json():
                client.delete(f"/proxies/{name}")


@pytest.fixture
def api(fault_server: FaultServer) -> Iterator[httpx.Client]:
    with tidy_client(fault_server) as client:
        yield client


@pytest.fixture
def proxy(api: httpx.Client, echo: EchoServer) -> dict[str, object]:
    """A proxy in front of the echo server on an ephemeral port."""
    response = api.post(
        "/proxies", json={"name": "echo", "listen": "127.0.0.1:0", "upstream": echo.address}
    )
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


@pytest.fixture(scope="session")
def greeter() -> Iterator[EchoServer]:
    """An echo server that speaks first: shows which direction a toxic acts on."""
    server = EchoServer(greeting=b"hello\n")
    try:
        yield server
    finally:
        server.stop()


def add_proxy(api: httpx.Client, name: str, upstream: str) -> str:
    """Create a proxy on an ephemeral port; returns its bound listen address."""
    response = api.post(
        "/proxies", json={"name": name, "listen": "127.0.0.1:0", "upstream": upstream}
    )
    assert response.status_code == 201, response.text
    return str(response.json()["listen"])


def add_toxic(
    api: httpx.Client, proxy: str, type_: str, stream: str = "downstream", **attributes: int
) -> None:
    response = api.post(
        f"/proxies/{proxy}/toxics", json={"type": type_, "stream": stream, "attributes": attributes}
    )
    assert response.status_code == 200, response.text

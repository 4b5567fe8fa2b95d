"""The fault server on the native data plane: hand-offs to and from toxics, closes, load.

The server runs in-process with ``data_plane="native"`` so a test can count the links the
native side forwards (``NativePlane.__len__``) and prove the hand-offs really happen.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib.util
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from faults.server import native
from tests.faults.server.conftest import (
    EchoServer,
    FaultServer,
    add_proxy,
    add_toxic,
    tidy_client,
)
from tests.faults.server.tcp import address, connect, read_until_closed, recv_exactly, round_trip

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="splice(2) is Linux only")

MIB = 1 << 20
ROOT = Path(__file__).resolve().parents[3]


class NativeServer(FaultServer):
    """The fault server forced onto the native data plane, with its links counted."""

    def __init__(self) -> None:
        super().__init__(data_plane="native")

    def attached(self) -> int:
        """Links the native side forwards right now (read on the server's loop)."""

        async def count() -> int:
            plane = native.plane_of(asyncio.get_running_loop())
            assert plane is not None, "the server is not on the native data plane"
            return len(plane)

        return int(self.thread.run(count()))  # type: ignore[call-overload]

    def wait_attached(self, want: int, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while (got := self.attached()) != want:
            assert time.monotonic() < deadline, f"{got} native links, expected {want}"
            time.sleep(0.01)


@pytest.fixture(scope="module")
def server() -> Iterator[NativeServer]:
    srv = NativeServer()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def napi(server: NativeServer) -> Iterator[httpx.Client]:
    with tidy_client(server) as client:
        yield client


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_latency_toxic_comes_and_goes_mid_transfer_without_losing_a_byte(
    server: NativeServer, napi: httpx.Client, echo: EchoServer
) -> None:
    listen = add_proxy(napi, "mid", echo.address)
    # Paced 4 KiB sends each way until told to stop; every phase waits for its share of
    # sends instead of sleeping, so a slow machine makes the test longer, not wrong.
    chunk, most, pace = 4096, 2048, 0.004
    payload = os.urandom(chunk * most)
    sent_at: list[float] = []
    arrived_at: list[float] = []
    received: list[bytes] = []
    errors: list[BaseException] = []
    stop = threading.Event()
    with connect(listen, timeout=30) as sock:
        assert round_trip(sock, b"hi") < 5
        server.wait_attached(2)  # both directions native before the toxic comes

        def send() -> None:
            try:
                for i in range(most):
                    if stop.is_set():
                        break
                    sent_at.append(time.monotonic())
                    sock.sendall(payload[i * chunk : (i + 1) * chunk])
                    time.sleep(pace)
                sock.shutdown(socket.SHUT_WR)
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)

        def receive() -> None:
            try:
                while head := sock.recv(chunk):  # b"": the echo's close after the last chunk
                    received.append(head + recv_exactly(sock, chunk - len(head)))
                    arrived_at.append(time.monotonic())
            except BaseException as exc:
                errors.append(exc)

        sender = threading.Thread(target=send)
        threads = [sender, threading.Thread(target=receive)]
        for thread in threads:
            thread.start()

        def wait_for_sends(after: float, settled: float, want: int) -> None:
            """Until ``want`` chunks were sent after ``after`` and at least ``settled`` s ago."""
            deadline = time.monotonic() + 30
            while sum(after < s < time.monotonic() - settled for s in list(sent_at)) < want:
                assert not errors, errors
                assert sender.is_alive(), "the sender ran out of payload"
                assert time.monotonic() < deadline, f"fewer than {want} sends in 30 s"
                time.sleep(0.01)

        wait_for_sends(0.0, 0.0, 40)
        adding = time.monotonic()
        for stream in ("upstream", "downstream"):
            response = napi.post(
                "/proxies/mid/toxics",
                json={"name": f"lag_{stream}", "type": "latency", "stream": stream,
                      "attributes": {"latency": 80}},
            )  # fmt: skip
            assert response.status_code == 200, response.text
        added = time.monotonic()  # both toxics are on from here
        assert server.attached() == 0  # both detached: the pipeline has the bytes now
        wait_for_sends(added + 0.05, 0.2, 25)
        removing = time.monotonic()
        for stream in ("upstream", "downstream"):
            assert napi.delete(f"/proxies/mid/toxics/lag_{stream}").status_code == 204
        removed = time.monotonic()  # both toxics are off from here
        server.wait_attached(2)  # handed back while the transfer goes on
        wait_for_sends(removed + 0.2, 0.0, 25)
        stop.set()
        for thread in threads:
            thread.join(30)
            assert not thread.is_alive(), "the transfer did not finish"
        assert not errors, errors
        assert len(received) == len(sent_at)
        assert sha(b"".join(received)) == sha(payload[: len(sent_at) * chunk])
    lags = [arrived - sent for sent, arrived in zip(sent_at, arrived_at, strict=True)]
    before = [lag for s, lag in zip(sent_at, lags, strict=True) if s < adding]
    during = [
        lag for s, lag in zip(sent_at, lags, strict=True) if added + 0.05 < s < removing - 0.2
    ]
    after = [lag for s, lag in zip(sent_at, lags, strict=True) if s > removed + 0.2]
    assert len(before) > 10 and len(during) > 10 and len(after) > 10
    assert statistics.median(before) < 0.05
    assert min(during) >= 0.15  # 80 ms each way, always
    assert statistics.median(after) < 0.05


def _action(name: str) -> Callable[[httpx.Client], object]:
    actions: dict[str, Callable[[httpx.Client], object]] = {
        "disable": lambda api: api.post("/proxies/shut", json={"enabled": False}),
        "delete": lambda api: api.delete("/proxies/shut"),
        "reset_peer": lambda api: add_toxic(api, "shut", "reset_peer", "upstream", timeout=0),
        "limit_data": lambda api: add_toxic(api, "shut", "limit_data", "downstream", bytes=10),
        "timeout": lambda api: add_toxic(api, "shut", "timeout", "upstream", timeout=100),
    }
    return actions[name]


@pytest.mark.parametrize("how", ["disable", "delete", "reset_peer", "limit_data", "timeout"])
def test_python_side_closes_native_connections_promptly(
    server: NativeServer, napi: httpx.Client, echo: EchoServer, how: str
) -> None:
    listen = add_proxy(napi, "shut", echo.address)
    socks = [connect(listen, timeout=5) for _ in range(3)]
    try:
        for sock in socks:
            assert round_trip(sock, b"ping") < 5
        server.wait_attached(6)
        _action(how)(napi)
        start = time.monotonic()
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.sendall(b"x" * 100)  # what reset_peer, limit_data and timeout act on
        ends = []
        for sock in socks:
            try:
                ends.append(len(read_until_closed(sock)))
            except ConnectionResetError:
                ends.append(-1)
        # A native dup of a closed socket would keep it open: the peer would never see
        # the end, and read_until_closed would time out instead.
        assert time.monotonic() - start < 5
        if how == "reset_peer":
            assert ends == [-1] * 3
        if how == "limit_data":
            assert ends == [10] * 3
        server.wait_attached(0)
    finally:
        for sock in socks:
            sock.close()


def test_two_hundred_connections_never_hang_while_toxics_come_and_go(
    server: NativeServer, napi: httpx.Client, echo: EchoServer
) -> None:
    listen = add_proxy(napi, "crowd", echo.address)
    host, port = listen.rsplit(":", 1)
    done = threading.Event()
    changes = 0

    def churn() -> None:
        nonlocal changes
        kinds = [
            ("latency", {"latency": 1}),
            ("slicer", {"average_size": 500, "size_variation": 100, "delay": 0}),
            ("bandwidth", {"rate": 100_000}),
        ]
        while not done.is_set() and changes < 500:
            type_, attributes = kinds[changes % len(kinds)]
            stream = ("upstream", "downstream")[changes % 2]
            add_toxic(napi, "crowd", type_, stream, **attributes)
            time.sleep(0.02)
            for toxic in napi.get("/proxies/crowd/toxics").json():
                napi.delete(f"/proxies/crowd/toxics/{toxic['name']}")
            changes += 1

    async def client() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        rounds = 0
        # 40 rounds at least, and on until the chains changed 10 times (unless churn died).
        while rounds < 40 or (changes < 10 and churner.is_alive()):
            payload = os.urandom(1024)
            writer.write(payload)
            assert await reader.readexactly(len(payload)) == payload
            await asyncio.sleep(0.01)  # keep talking while the chains change
            rounds += 1
        writer.write_eof()
        assert await reader.read() == b""  # the echo's close reaches us through the proxy
        writer.close()

    async def crowd() -> None:
        await asyncio.wait_for(asyncio.gather(*(client() for _ in range(200))), 180)

    churner = threading.Thread(target=churn)
    churner.start()
    try:
        asyncio.run(crowd())
    finally:
        done.set()
        churner.join(30)
    assert changes >= 10  # the chains really changed while the crowd talked
    server.wait_attached(0)  # every connection ended, none left behind on the native side


def test_small_messages_to_a_reader_that_stalls_arrive_whole_and_in_order(
    server: NativeServer, napi: httpx.Client, echo: EchoServer
) -> None:
    """A peer that stops reading makes the native side's sends fall short while small
    chunks keep coming: the rest must wait in the link's pipe, not be lost or reordered."""
    listen = add_proxy(napi, "stall", echo.address)
    chunk, count = 1000, 3000
    payload = os.urandom(chunk * count)
    errors: list[BaseException] = []
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fills after a few chunks
    sock.settimeout(30)
    with sock:
        sock.connect(address(listen))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        assert round_trip(sock, b"hi") < 5
        server.wait_attached(2)

        def send() -> None:
            try:
                for i in range(count):
                    sock.sendall(payload[i * chunk : (i + 1) * chunk])
                    time.sleep(0.0002)  # one small chunk at a time: each a short read
                sock.shutdown(socket.SHUT_WR)
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)

        sender = threading.Thread(target=send)
        sender.start()
        time.sleep(1.0)  # nobody reads: every buffer on the way back fills up
        echoed = read_until_closed(sock, limit=len(payload) + 1)
        sender.join(30)
    assert not errors, errors
    assert len(echoed) == len(payload)
    assert sha(echoed) == sha(payload)
    server.wait_attached(0)


@pytest.mark.timeout(1200)  # a whole suite: on a busy machine it can take minutes
def test_server_suite_passes_on_the_other_data_plane() -> None:
    """This run covers the default plane; the server suite runs again on the other one."""
    other = "python" if native.choose_plane() == "native" else "native"
    # Not an xdist worker's environment: the inner run is a plain run of its own.
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_XDIST_", "PYTEST_CURRENT"))
    }
    env[native.ENV] = other
    # In one process (addopts may ask for workers): the suite beside this run's is load enough.
    one_process = ["-n", "0"] if importlib.util.find_spec("xdist") else []
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *one_process, "-x",
         "--ignore-glob=*test_native_*", "tests/faults/server"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1100, check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"{other} plane:\n{result.stdout[-4000:]}{result.stderr[-2000:]}"


def test_a_bad_data_plane_is_refused_with_a_clear_message() -> None:
    command = [sys.executable, "-m", "faults.server", "--port", "0"]
    env = {**os.environ, native.ENV: "rust"}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "FAULTS_DATA_PLANE 'rust' is not a data plane; known: python, native" in result.stderr
    result = subprocess.run(
        [*command, "--data-plane", "rust"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert "invalid choice: 'rust'" in result.stderr

"""No byte lost or reordered through pass-through toxics, even while the chain changes."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from collections.abc import Callable

import httpx
import pytest

from tests.faults.server.conftest import EchoServer, add_proxy, add_toxic
from tests.faults.server.tcp import connect, read_until_closed, round_trip

MIB = 1 << 20


def echo_through(
    listen: str,
    payload: bytes,
    during: Callable[[threading.Thread], None] | None = None,
    pace: float = 0.0,
) -> bytes:
    """Send ``payload`` in 16 KiB pieces (``pace`` s apart), half-close, return the echo."""
    sock = connect(listen, timeout=30)
    errors: list[BaseException] = []

    def send() -> None:
        try:
            for offset in range(0, len(payload), 16384):
                sock.sendall(payload[offset : offset + 16384])
                if pace:
                    time.sleep(pace)
            sock.shutdown(socket.SHUT_WR)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    sender = threading.Thread(target=send)
    sender.start()
    try:
        if during is not None:
            during(sender)
        received = read_until_closed(sock, limit=len(payload) + 1)
    finally:
        sender.join(30)
        sock.close()
    assert not errors, errors
    return received


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


PASS_THROUGH = [
    ("latency", {"latency": 5, "jitter": 5}),
    ("bandwidth", {"rate": 20_000}),
    ("slicer", {"average_size": 2000, "size_variation": 1000, "delay": 10}),
    ("slow_close", {"delay": 50}),
    ("limit_data", {"bytes": 16 * MIB}),  # more than any transfer here: never reached
]


@pytest.mark.parametrize(("type_", "attributes"), PASS_THROUGH, ids=[t for t, _ in PASS_THROUGH])
def test_one_mib_each_way_arrives_intact(
    api: httpx.Client, echo: EchoServer, type_: str, attributes: dict[str, int]
) -> None:
    listen = add_proxy(api, "sum", echo.address)
    for stream in ("upstream", "downstream"):
        add_toxic(api, "sum", type_, stream, **attributes)
    payload = os.urandom(MIB)
    assert sha(echo_through(listen, payload)) == sha(payload)


def test_adding_and_removing_toxics_mid_transfer_loses_nothing(
    api: httpx.Client, echo: EchoServer
) -> None:
    listen = add_proxy(api, "churn", echo.address)
    payload = os.urandom(4 * MIB)

    rounds = 0

    def churn(sender: threading.Thread) -> None:
        nonlocal rounds
        kinds = [t for t in PASS_THROUGH if t[0] != "slow_close"]
        while sender.is_alive() and rounds < 200:
            round_ = rounds
            rounds += 1
            type_, attributes = kinds[round_ % len(kinds)]
            stream = ("upstream", "downstream")[round_ % 2]
            add_toxic(api, "churn", type_, stream, **attributes)
            time.sleep(0.005)
            if round_ % 3 == 2:
                for toxic in api.get("/proxies/churn/toxics").json():
                    api.delete(f"/proxies/churn/toxics/{toxic['name']}")
        for toxic in api.get("/proxies/churn/toxics").json():
            api.delete(f"/proxies/churn/toxics/{toxic['name']}")

    assert sha(echo_through(listen, payload, during=churn, pace=0.002)) == sha(payload)
    assert rounds >= 10  # the chain really changed many times during the transfer


def test_toxic_changes_apply_to_open_connections(api: httpx.Client, echo: EchoServer) -> None:
    listen = add_proxy(api, "live", echo.address)
    api.post(
        "/proxies/live/toxics",
        json={"type": "latency", "name": "lag", "toxicity": 0.0, "attributes": {"latency": 400}},
    )

    def fastest(sock: socket.socket, payload: bytes) -> float:
        """Best of three round trips: a busy machine's stall hits one, a toxic hits all."""
        return min(round_trip(sock, payload) for _ in range(3))

    with connect(listen) as sock:
        assert fastest(sock, b"a") < 0.2  # half the toxic's latency: the toxic is not on
        api.patch("/proxies/live/toxics/lag", json={"toxicity": 1.0})  # drawn again
        assert 0.36 <= round_trip(sock, b"b") < 0.8  # once, not twice
        api.delete("/proxies/live/toxics/lag")
        assert fastest(sock, b"c") < 0.2
        add_toxic(api, "live", "latency", "upstream", latency=400)
        assert 0.36 <= round_trip(sock, b"d") < 0.8

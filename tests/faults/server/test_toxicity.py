"""Toxicity: drawn per connection and direction, repeatable with a seed."""

from __future__ import annotations

import socket

import httpx
import pytest

from tests.faults.server.conftest import EchoServer, FaultServer, add_proxy
from tests.faults.server.tcp import connect, read_until_closed

CONNECTIONS = 40


def applied_pattern(api: httpx.Client, listen: str) -> list[bool]:
    """For each new connection: did limit_data (1 byte) cut the echo short?"""
    pattern = []
    for _ in range(CONNECTIONS):
        with connect(listen) as sock:
            sock.sendall(b"abc")
            sock.shutdown(socket.SHUT_WR)  # the echo server then closes
            pattern.append(read_until_closed(sock) == b"a")
    return pattern


def limited_proxy(api: httpx.Client, echo: EchoServer, toxicity: float) -> str:
    listen = add_proxy(api, "tox", echo.address)
    response = api.post(
        "/proxies/tox/toxics",
        json={"type": "limit_data", "toxicity": toxicity, "attributes": {"bytes": 1}},
    )
    assert response.status_code == 200
    return listen


@pytest.mark.parametrize(("toxicity", "expected"), [(0.0, False), (1.0, True)])
def test_toxicity_zero_never_and_one_always(
    api: httpx.Client, echo: EchoServer, toxicity: float, expected: bool
) -> None:
    listen = limited_proxy(api, echo, toxicity)
    assert applied_pattern(api, listen) == [expected] * CONNECTIONS


def seeded_pattern(seed: int, echo: EchoServer) -> list[bool]:
    server = FaultServer(seed=seed)
    try:
        with httpx.Client(base_url=server.url, timeout=10) as api:
            return applied_pattern(api, limited_proxy(api, echo, 0.5))
    finally:
        server.stop()


def test_seeded_half_toxicity_is_repeatable_and_about_half(echo: EchoServer) -> None:
    first = seeded_pattern(42, echo)
    assert seeded_pattern(42, echo) == first
    assert 10 <= sum(first) <= 30, first
    assert seeded_pattern(43, echo) != first

"""Small blocking TCP helpers for the tests: connect, exchange, read exactly."""

from __future__ import annotations

import socket
import time


def address(listen: object) -> tuple[str, int]:
    host, port = str(listen).rsplit(":", 1)
    return host, int(port)


def connect(listen: object, timeout: float = 5) -> socket.socket:
    sock = socket.create_connection(address(listen), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    parts = []
    while size:
        part = sock.recv(min(size, 1 << 16))
        if not part:
            raise EOFError(f"connection closed with {size} bytes still expected")
        parts.append(part)
        size -= len(part)
    return b"".join(parts)


def round_trip(sock: socket.socket, payload: bytes) -> float:
    """Seconds from send until the echo of ``payload`` is back."""
    start = time.perf_counter()
    sock.sendall(payload)
    recv_exactly(sock, len(payload))
    return time.perf_counter() - start


def read_until_closed(sock: socket.socket, limit: int = 1 << 24) -> bytes:
    parts = []
    total = 0
    while total < limit:
        part = sock.recv(1 << 16)
        if not part:
            break
        parts.append(part)
        total += len(part)
    return b"".join(parts)

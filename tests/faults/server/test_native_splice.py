"""The splice(2) forwarder on its own: real TCP sockets, no fault server around it.

Topology of every test: ``a`` (test client) -> ``p1`` | forwarder | ``p2`` -> ``b`` (test
server). ``p1``/``p2`` play the proxy's sockets: non-blocking and owned by the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import os
import select
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="splice(2) is Linux only")

if sys.platform == "linux":
    from faults.server import _splice  # a missing build must fail here, not skip

MIB = 1 << 20


@dataclass
class Hop:
    a: socket.socket
    p1: socket.socket
    p2: socket.socket
    b: socket.socket

    def close(self) -> None:
        for sock in (self.a, self.p1, self.p2, self.b):
            sock.close()


def _pair(listener: socket.socket) -> tuple[socket.socket, socket.socket]:
    outer = socket.create_connection(listener.getsockname(), timeout=10)
    inner, _ = listener.accept()
    inner.settimeout(10)
    for sock in (outer, inner):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return outer, inner


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = socket.create_server(("127.0.0.1", 0), backlog=512)
    sock.settimeout(10)
    try:
        yield sock
    finally:
        sock.close()


@pytest.fixture
def fwd() -> Iterator[_splice.Forwarder]:
    forwarder = _splice.Forwarder()
    try:
        yield forwarder
    finally:
        forwarder.close()


@pytest.fixture
def hop(listener: socket.socket) -> Iterator[Hop]:
    a, p1 = _pair(listener)
    p2, b = _pair(listener)
    p1.setblocking(False)
    p2.setblocking(False)
    h = Hop(a, p1, p2, b)
    try:
        yield h
    finally:
        h.close()


def attach(fwd: _splice.Forwarder, hop: Hop, up: int = 1, down: int = 2) -> None:
    fwd.add(up, hop.p1.fileno(), hop.p2.fileno())
    fwd.add(down, hop.p2.fileno(), hop.p1.fileno())


def wait_finished(fwd: _splice.Forwarder, count: int, timeout: float = 10) -> dict[int, int]:
    """Collect ``count`` finished links via the notification fd, as the server's loop does."""
    seen: dict[int, int] = {}
    deadline = time.monotonic() + timeout
    while len(seen) < count:
        left = deadline - time.monotonic()
        assert left > 0, f"only {seen} finished within {timeout}s"
        readable, _, _ = select.select([fwd.notify_fd], [], [], left)
        if readable:
            seen.update(fwd.finished())
    return seen


def read_all(sock: socket.socket, size: int, chunk: int = 1 << 16, pause: float = 0) -> bytes:
    """Up to `size` bytes, fewer if the peer closes first; `pause` after each read."""
    parts, got = [], 0
    while got < size:
        part = sock.recv(min(size - got, chunk))
        if not part:
            break
        parts.append(part)
        got += len(part)
        if pause:
            time.sleep(pause)
    return b"".join(parts)


def read_slowly(sock: socket.socket, size: int) -> bytes:
    """A reader slower than the sender: small reads with a pause keep the buffers full."""
    return read_all(sock, size, chunk=1 << 15, pause=0.001)


def in_thread(fn: object, *args: object) -> tuple[threading.Thread, list[object]]:
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(fn(*args)), daemon=True)  # type: ignore[operator]
    thread.start()
    return thread, result


def test_bytes_pass_intact_both_ways_at_once(fwd: _splice.Forwarder, hop: Hop) -> None:
    attach(fwd, hop)
    up, down = os.urandom(MIB), os.urandom(MIB)
    senders = [in_thread(hop.a.sendall, up)[0], in_thread(hop.b.sendall, down)[0]]
    at_b, got_b = in_thread(read_all, hop.b, MIB)
    at_a, got_a = in_thread(read_all, hop.a, MIB)
    for thread in [*senders, at_b, at_a]:
        thread.join(20)
    assert hashlib.sha256(got_b[0]).digest() == hashlib.sha256(up).digest()  # type: ignore[arg-type]
    assert hashlib.sha256(got_a[0]).digest() == hashlib.sha256(down).digest()  # type: ignore[arg-type]
    assert fwd.counters(1) == MIB
    assert fwd.counters(2) == MIB


def test_half_close_passes_through_after_the_data(fwd: _splice.Forwarder, hop: Hop) -> None:
    attach(fwd, hop)
    hop.a.sendall(b"last words")
    hop.a.shutdown(socket.SHUT_WR)
    assert read_all(hop.b, 100) == b"last words"  # then EOF: read_all stops at it
    assert wait_finished(fwd, 1) == {1: 0}
    assert fwd.detach(1) == (b"", True, True, 0, 10)  # EOF read and passed on after 10 bytes
    # The other direction still works after the half-close.
    hop.b.sendall(b"reply")
    assert read_all(hop.a, 5) == b"reply"
    hop.b.shutdown(socket.SHUT_WR)
    assert hop.a.recv(10) == b""
    assert wait_finished(fwd, 1) == {2: 0}


def test_slow_reader_stalls_the_sender_without_spinning(fwd: _splice.Forwarder, hop: Hop) -> None:
    attach(fwd, hop)
    hop.a.setblocking(False)
    chunk = os.urandom(1 << 16)
    sent = bytearray()
    quiet_since = time.monotonic()
    deadline = time.monotonic() + 20
    while time.monotonic() - quiet_since < 0.5:  # the sender is blocked for 0.5 s
        assert time.monotonic() < deadline, "the sender never blocked: no flow control"
        try:
            n = hop.a.send(chunk)
        except BlockingIOError:
            time.sleep(0.01)
            continue
        sent += chunk[:n]
        quiet_since = time.monotonic()
    # Everything sent sits in socket buffers and one pipe, not in an unbounded queue.
    assert len(sent) < 64 * MIB
    cpu = time.process_time()
    time.sleep(1.0)
    # Level-triggered EPOLLIN on a blocked link would burn a core; flow control waits.
    assert time.process_time() - cpu < 0.3
    hop.a.setblocking(True)
    received = read_all(hop.b, len(sent))
    assert received == bytes(sent)
    assert fwd.counters(1) == len(sent)


def test_detach_returns_the_bytes_in_flight_and_loses_nothing(
    fwd: _splice.Forwarder, hop: Hop
) -> None:
    """Alternate native and Python forwarding 40 times during a 4 MiB stream."""
    data = os.urandom(4 * MIB)
    # Small buffers and a slow reader keep p2 full, so the pipe holds bytes at a detach.
    hop.p2.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 15)
    hop.b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 15)
    sender, _ = in_thread(hop.a.sendall, data)
    receiver, received = in_thread(read_slowly, hop.b, len(data))
    pending_seen = 0
    total_forwarded = 0
    for link in range(1, 41):
        fwd.add(link, hop.p1.fileno(), hop.p2.fileno())
        time.sleep(0.005)
        pending, eof, shut, err, forwarded = fwd.detach(link)
        assert (eof, shut, err) == (False, False, 0)
        total_forwarded += forwarded
        pending_seen += len(pending) > 0
        # The Python side's turn: first what the pipe held, then a little straight from p1.
        hop.p2.setblocking(True)
        hop.p2.sendall(pending)
        with contextlib.suppress(BlockingIOError):
            hop.p2.sendall(hop.p1.recv(1 << 14))
        hop.p2.setblocking(False)
    fwd.add(99, hop.p1.fileno(), hop.p2.fileno())
    sender.join(20)
    receiver.join(20)
    assert received and hashlib.sha256(received[0]).digest() == hashlib.sha256(data).digest()  # type: ignore[arg-type]
    assert 0 < total_forwarded + fwd.counters(99) <= len(data)
    assert pending_seen > 0, "no detach caught bytes in the pipe: the test proved nothing"


def test_detach_of_a_blocked_link_hands_back_the_pipe(fwd: _splice.Forwarder, hop: Hop) -> None:
    attach(fwd, hop)
    hop.a.setblocking(False)
    data = bytearray()
    deadline = time.monotonic() + 10
    quiet = 0
    while quiet < 20 and time.monotonic() < deadline:  # fill everything up to b
        try:
            chunk = os.urandom(1 << 16)
            data += chunk[: hop.a.send(chunk)]
            quiet = 0
        except BlockingIOError:
            quiet += 1
            time.sleep(0.01)
    hop.a.shutdown(socket.SHUT_WR)
    time.sleep(0.05)
    pending, eof, shut, err, forwarded = fwd.detach(1)
    assert pending, "b never read, so the pipe must hold bytes"
    assert (shut, err) == (False, 0)  # bytes still in the pipe: the EOF cannot have passed
    rest = bytearray()
    if not eof:  # EOF not reached yet: the rest is still in p1's receive buffer
        hop.p1.setblocking(True)
        rest += read_all(hop.p1, len(data))
    delivered = read_all(hop.b, forwarded)
    assert delivered + pending + rest == data


def test_finished_reports_a_reset_destination_with_its_errno(
    fwd: _splice.Forwarder, hop: Hop
) -> None:
    attach(fwd, hop)
    hop.b.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    hop.b.close()  # RST to p2
    time.sleep(0.05)
    hop.a.sendall(b"x" * 1000)
    done = wait_finished(fwd, 2)
    # up fails writing to p2, down fails reading from p2: both with the socket's error.
    assert done[1] in (errno.ECONNRESET, errno.EPIPE)
    assert done[2] in (errno.ECONNRESET, errno.EPIPE)
    assert fwd.detach(1)[3] == done[1]  # detach tells the same errno


def test_api_rejects_misuse_with_clear_errors(fwd: _splice.Forwarder, hop: Hop) -> None:
    fwd.add(1, hop.p1.fileno(), hop.p2.fileno())
    with pytest.raises(ValueError, match="already forwarded"):
        fwd.add(1, hop.p1.fileno(), hop.p2.fileno())
    with pytest.raises(KeyError):
        fwd.detach(7)
    with pytest.raises(KeyError):
        fwd.counters(7)
    hop.a.settimeout(None)  # truly blocking (a timeout makes Python use O_NONBLOCK)
    with pytest.raises(ValueError, match="non-blocking"):
        fwd.add(2, hop.a.fileno(), hop.p2.fileno())
    with pytest.raises(OSError):
        fwd.add(3, 100_000, hop.p2.fileno())
    fwd.close()
    with pytest.raises(ValueError, match="closed"):
        fwd.add(4, hop.p1.fileno(), hop.p2.fileno())
    # The caller's sockets survive the forwarder.
    hop.p2.setblocking(True)
    hop.p2.sendall(b"still mine")
    assert read_all(hop.b, 10) == b"still mine"


def _cpu_while(action: Callable[[], object]) -> float:
    """CPU seconds this process (the forwarder's thread included) spends during ``action``."""
    start = time.process_time()
    action()
    return time.process_time() - start


def _messages_apart(hop: Hop, count: int, gap: float) -> None:
    for i in range(count):
        hop.a.sendall(struct.pack("!I", i))
        assert read_all(hop.b, 4) == struct.pack("!I", i)
        time.sleep(gap)


def test_busy_polling_polls_after_traffic_and_sleeps_when_idle(hop: Hop) -> None:
    """With a 10 ms window, each message keeps the forwarder polling for about 10 ms; the
    default (no window) sleeps in epoll_wait between messages, and so does either when idle."""
    polling = _splice.Forwarder(busy_poll_us=10_000)
    try:
        attach(polling, hop)
        busy = _cpu_while(lambda: _messages_apart(hop, 30, 0.03))  # ~0.3 s if it polls
        idle = _cpu_while(lambda: time.sleep(0.5))
        detached = [polling.detach(1), polling.detach(2)]
        assert all(d[0] == b"" for d in detached)  # nothing left in flight
    finally:
        polling.close()
    sleeping = _splice.Forwarder()
    try:
        attach(sleeping, hop)
        quiet = _cpu_while(lambda: _messages_apart(hop, 30, 0.03))
    finally:
        sleeping.close()
    # The windows are wall-clock: on a busy machine the polling thread gets only part of a
    # core, so the CPU they cost is less than 0.3 s. It is still clearly more than the same
    # messages cost without a window, measured here under the same load.
    assert busy > 2 * quiet + 0.03, (
        f"busy polling used {busy:.3f} s of CPU over 30 windows, without {quiet:.3f} s"
    )
    # Waiting for a core costs no CPU time: load does not raise these two.
    assert quiet < 0.06, f"the default forwarder used {quiet:.3f} s of CPU: it polls"
    assert idle < 0.05, f"{idle:.3f} s of CPU in 0.5 s idle: the polling never stopped"


def test_busy_poll_window_out_of_range_is_refused() -> None:
    for bad in (-1, 10_001):
        message = f"busy_poll_us must be between 0 and 10000, got {bad}"
        with pytest.raises(ValueError, match=message):
            _splice.Forwarder(busy_poll_us=bad)
    with pytest.raises(TypeError):
        _splice.Forwarder(50)  # keyword only: the meaning of the number must be spelled out


def test_two_hundred_links_at_once(fwd: _splice.Forwarder, listener: socket.socket) -> None:
    """100 connections (200 links) each echo 64 KiB through the forwarder concurrently."""
    hops = []
    try:
        for _ in range(100):
            a, p1 = _pair(listener)
            p2, b = _pair(listener)
            p1.setblocking(False)
            p2.setblocking(False)
            hops.append(Hop(a, p1, p2, b))
        for i, h in enumerate(hops):
            attach(fwd, h, up=2 * i, down=2 * i + 1)
        asyncio.run(asyncio.wait_for(_drive(hops), 60))
        for i in range(len(hops)):
            assert fwd.counters(2 * i) == fwd.counters(2 * i + 1) == 1 << 16
        assert len(wait_finished(fwd, 200)) == 200
    finally:
        for h in hops:
            h.close()


async def _drive(hops: list[Hop]) -> None:
    """b echoes what it gets and closes on EOF; a sends, half-closes and checks the echo."""
    loop = asyncio.get_running_loop()

    async def echo(sock: socket.socket) -> None:
        sock.setblocking(False)
        while data := await loop.sock_recv(sock, 1 << 16):
            await loop.sock_sendall(sock, data)
        sock.shutdown(socket.SHUT_WR)

    async def client(sock: socket.socket) -> None:
        sock.setblocking(False)
        payload = os.urandom(1 << 16)

        async def send() -> None:
            await loop.sock_sendall(sock, payload)
            sock.shutdown(socket.SHUT_WR)

        sending = asyncio.create_task(send())
        got = bytearray()
        while data := await loop.sock_recv(sock, 1 << 16):
            got += data
        await sending
        assert bytes(got) == payload

    await asyncio.gather(*(echo(h.b) for h in hops), *(client(h.a) for h in hops))

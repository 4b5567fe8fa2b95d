"""A one-minute tour of the fault layer: `python -m faults.demo`.

Starts the embedded fault server, a tiny echo service, and a proxy in front of it;
measures the round trip without and with a 100 ms latency toxic, removes the toxic,
and stops everything. Exists so a newcomer can see a fault take effect in seconds.
"""

from __future__ import annotations

import socket
import socketserver
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from faults.client import FaultClient, FaultServerError
from faults.embedded import FaultServerStartError, fault_server

LATENCY_MS = 100
SAMPLES = 20
IO_TIMEOUT = 5.0  # s per socket operation: every step of the demo is bounded


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


class _EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@contextmanager
def echo_server() -> Iterator[str]:
    """An echo service on 127.0.0.1 and a free port; yields "host:port"."""
    server = _EchoServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        yield f"127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()


def round_trip_ms(host: str, port: int, samples: int) -> float:
    """Median time of a 64-byte ping-pong over one connection, in ms."""
    payload = b"x" * 64
    times = []
    with socket.create_connection((host, port), timeout=IO_TIMEOUT) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(samples):
            start = time.perf_counter()
            sock.sendall(payload)
            received = 0
            while received < len(payload):
                chunk = sock.recv(len(payload) - received)
                if not chunk:
                    raise ConnectionError("echo connection closed early")
                received += len(chunk)
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def run(client: FaultClient, upstream: str) -> tuple[list[str], bool]:
    """The demo itself; returns the lines of its summary and whether the fault showed."""
    proxy = client.create_proxy("demo_echo", upstream=upstream)
    host, port = proxy.listen_host, proxy.listen_port
    lines = [f"fault server {client.url} (version {client.version()})"]
    lines.append(f"proxy demo_echo: {proxy.listen} -> {upstream}")
    try:
        base = round_trip_ms(host, port, SAMPLES)
        lines.append(f"round trip, no toxic:          {base:8.2f} ms (median of {SAMPLES})")
        toxic = client.add_toxic("demo_echo", "latency", {"latency": LATENCY_MS})
        slow = round_trip_ms(host, port, 5)
        lines.append(f"round trip, {LATENCY_MS} ms latency toxic: {slow:8.2f} ms (median of 5)")
        client.remove_toxic("demo_echo", toxic.name)
        after = round_trip_ms(host, port, SAMPLES)
        lines.append(f"round trip, toxic removed:     {after:8.2f} ms (median of {SAMPLES})")
        ok = slow >= LATENCY_MS * 0.9 and after < LATENCY_MS / 2
        lines.append("the toxic took effect and went away" if ok else "UNEXPECTED timings")
    finally:
        client.delete_proxy("demo_echo")
    return lines, ok


def main() -> int:
    try:
        with echo_server() as upstream, fault_server() as client:
            lines, ok = run(client, upstream)
            print("\n".join(lines))
    except (FaultServerError, FaultServerStartError, OSError) as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

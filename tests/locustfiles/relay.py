"""A TCP port of this machine's loopback, seen from inside a network namespace, through a
Unix socket: test plumbing for the namespaced distributed run.

A process in a network namespace of its own cannot reach the reference stack on the
host's 127.0.0.1. Unix sockets live in the file system, not the network, so they cross
namespaces: the test serves `UnixToTcp` (a socket file -> the host's 127.0.0.1:PORT) and
inside each namespace ``python relay.py PORT SOCKET`` listens on that namespace's own
127.0.0.1:PORT and carries each connection to the socket file. The stack's URLs then
work unchanged in every namespace, while the namespaces reach each other only through
the links the test creates.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import sys
import threading
from typing import Any


def pump(a: socket.socket, b: socket.socket) -> None:
    """Both directions until each side has closed, then both sockets closed."""

    def one_way(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    back = threading.Thread(target=one_way, args=(b, a), daemon=True)
    back.start()
    one_way(a, b)
    back.join()
    a.close()
    b.close()


class UnixToTcp(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """Serves socket file `path`: each connection is carried to 127.0.0.1:`port`."""

    daemon_threads = True

    def __init__(self, path: str, port: int) -> None:
        self.port = port
        super().__init__(path, _ToTcp)


class _ToTcp(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        server = self.server
        assert isinstance(server, UnixToTcp)
        try:
            upstream = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        except OSError:
            return
        upstream.settimeout(None)
        pump(self.request, upstream)


class _TcpToUnix(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        server: Any = self.server
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            upstream.connect(server.unix_path)
        except OSError:
            return
        pump(self.request, upstream)


def main(port: int, unix_path: str, listening: str) -> None:
    """Listen on 127.0.0.1:`port` (of this namespace), create file `listening` once it
    does, and carry every connection to `unix_path`."""

    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True

    server = Server(("127.0.0.1", port), _TcpToUnix)
    server.unix_path = unix_path  # type: ignore[attr-defined]
    open(listening, "w").close()
    server.serve_forever()


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], sys.argv[3])

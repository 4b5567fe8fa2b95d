"""Port checks done before anything starts, so a taken port is an error, never a hang."""

from __future__ import annotations

import socket
from collections.abc import Mapping
from contextlib import ExitStack

from testbed.processes import StackError


def port_is_free(host: str, port: int) -> bool:
    """True if a server could listen on host:port now.

    SO_REUSEADDR, as the servers themselves set it, so a port in TIME_WAIT counts as free
    and only a live listener counts as taken.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            sock.listen(1)
        except OSError:
            return False
    return True


def check_ports_free(host: str, wanted: Mapping[str, int]) -> None:
    """Raise one error naming every taken port and what wanted it; also catch duplicates."""
    by_port: dict[int, list[str]] = {}
    for what, port in wanted.items():
        by_port.setdefault(port, []).append(what)
    problems = [
        f"port {port} is wanted by both {' and '.join(names)}"
        for port, names in by_port.items()
        if len(names) > 1
    ]
    problems += [
        f"port {port} on {host} (wanted by {what}) is already in use"
        for what, port in wanted.items()
        if not port_is_free(host, port)
    ]
    if problems:
        raise StackError(
            "cannot start the stack: "
            + "; ".join(problems)
            + ". Stop what holds it, choose another port (see --help), or pass --free-ports."
        )


def free_ports(host: str, count: int) -> list[int]:
    """`count` distinct ports the OS says are free now (all held open while choosing)."""
    with ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((host, 0))
            ports.append(sock.getsockname()[1])
    return ports

"""Spread simulated users over loopback source addresses (127.0.0.2, 127.0.0.3, ...).

A service that limits requests per client address (the real Archivist's Flask-Limiter
keys on the remote address) sees every Locust user as one client when all of them
connect from 127.0.0.1, and answers 429 within seconds. With ``--source-addresses N``,
user k connects from 127.0.0.(2 + k mod N), as N real clients would; Linux routes all
of 127.0.0.0/8 to the loopback interface, so no set-up is needed. Only a loopback target
can be reached from a loopback source, so another --host with this option is refused.
"""

from __future__ import annotations

import ipaddress
import itertools
import socket
from typing import Any
from urllib.parse import urlsplit

from geventhttpclient.client import HTTPClient, HTTPClientPool
from locust import events
from locust.env import Environment

FIRST = 2  # 127.0.0.1 stays the toolkit's own (health probes, audits)
MAX_ADDRESSES = 250  # 127.0.0.2 .. 127.0.0.251

_numbers = itertools.count()


def address(number: int, count: int) -> str:
    """The source address of the `number`-th user when spreading over `count` addresses."""
    return f"127.0.0.{FIRST + number % count}"


class BoundClientPool(HTTPClientPool):
    """geventhttpclient's client pool whose connections leave from one source address.

    geventhttpclient has no source-address setting; its connection pool makes each socket
    in `_create_tcp_socket`, so the clients this pool creates bind there before connecting.
    """

    def __init__(self, source: str, **kw: Any) -> None:
        super().__init__(**kw)
        self.source = source

    def get_client(self, url: Any) -> HTTPClient:
        known = len(self.clients)
        client = super().get_client(url)
        if len(self.clients) > known:  # made just now: bind its sockets from now on
            pool = client._connection_pool
            make, source = pool._create_tcp_socket, self.source

            def bound(family: int, socktype: int, protocol: int) -> Any:
                sock = make(family, socktype, protocol)
                if family == socket.AF_INET:
                    sock.bind((source, 0))
                return sock

            pool._create_tcp_socket = bound  # type: ignore[method-assign]
        return client


def count_of(environment: Environment) -> int:
    return int(getattr(environment.parsed_options, "source_addresses", 0) or 0)


def bind_user(user: Any) -> str | None:
    """Give a FastHttpUser's client the next source address (None when not spreading)."""
    count = count_of(user.environment)
    if count <= 0:
        return None
    source = address(next(_numbers), count)
    agent = user.client.client  # FastHttpSession's LocustUserAgent
    old = agent.clientpool
    agent.clientpool = BoundClientPool(source, **old.client_args)
    old.close()
    return source


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any) -> None:
    parser.add_argument(
        "--source-addresses",
        type=int,
        default=0,
        include_in_web_ui=True,
        help="Spread users over N loopback source addresses (127.0.0.2 ...), so per-IP "
        "rate limits see N clients, not one (default 0: every user from the OS's choice)",
    )


@events.init.add_listener
def _check(environment: Environment, **_: Any) -> None:
    count = count_of(environment)
    if count == 0:
        return
    if not 0 < count <= MAX_ADDRESSES:
        raise SystemExit(f"error: --source-addresses {count}: must be 1..{MAX_ADDRESSES}")
    host = urlsplit(environment.host or "").hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if host and not loopback:
        raise SystemExit(
            f"error: --source-addresses needs a loopback --host (127.x.x.x), not {host!r}"
        )

"""The quick cookie jar behaves as the stdlib's: a cookie set by the service (a load
balancer's sticky session, say) is sent back; none is invented when none was set.

Through geventhttpclient's UserAgent, the client under Locust's FastHttpSession: importing
Locust here would monkey-patch the whole test session."""

from __future__ import annotations

from collections.abc import Iterator
from http.cookiejar import CookieJar
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from geventhttpclient import UserAgent

from tests.conftest import serving
from workload.cookies import QuickCookieJar, install


class Handler(BaseHTTPRequestHandler):
    """/set sets a cookie; every path answers with the Cookie header it was sent."""

    def do_GET(self) -> None:
        body = (self.headers.get("Cookie") or "").encode()
        self.send_response(200)
        if self.path == "/set":
            self.send_header("Set-Cookie", "sticky=node-2; Path=/")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def base_url() -> Iterator[str]:
    with serving(ThreadingHTTPServer(("127.0.0.1", 0), Handler)) as server:
        yield f"http://127.0.0.1:{server.server_address[1]}"


class Session:
    """The two attributes of a FastHttpSession that `install` replaces."""

    def __init__(self) -> None:
        self.cookiejar = CookieJar()
        self.client = UserAgent(cookiejar=self.cookiejar)

    def get(self, url: str) -> str:
        return bytes(self.client.urlopen(url).content).decode()


@pytest.mark.parametrize("quick", [False, True], ids=["stdlib", "quick"])
def test_cookies_round_trip_as_with_the_stdlib_jar(base_url: str, quick: bool) -> None:
    session = Session()
    if quick:
        install(session)
        assert isinstance(session.client.cookiejar, QuickCookieJar)
    assert session.get(f"{base_url}/echo") == ""
    assert session.get(f"{base_url}/set") == ""
    assert session.get(f"{base_url}/echo") == "sticky=node-2"
    assert [c.name for c in session.cookiejar] == ["sticky"]


def test_install_keeps_the_cookies_already_held(base_url: str) -> None:
    session = Session()
    session.get(f"{base_url}/set")
    install(session)
    assert session.get(f"{base_url}/echo") == "sticky=node-2"

"""A cookie jar that does nothing, cheaply, when there is nothing to do.

The stdlib CookieJar takes a lock, reads the clock and walks its (empty) domains on every
request, and does the same on every answer even when no Set-Cookie came back: about a
tenth of a Locust process's CPU per request against a fast service. The Archivist API
authenticates with bearer tokens, so the jar is usually empty; but a load balancer's
sticky-session cookie or a CSRF profile's session cookie must still work, so the jar is
kept, and only its empty-handed work is skipped. Behaviour is the stdlib's: with no
cookie stored, `add_cookie_header` adds no header; with no Set-Cookie(2) header in the
answer, `extract_cookies` stores nothing.
"""

from __future__ import annotations

from http.cookiejar import CookieJar
from typing import Any


class QuickCookieJar(CookieJar):
    def add_cookie_header(self, request: Any) -> None:
        if self._cookies:  # type: ignore[attr-defined]
            super().add_cookie_header(request)

    def extract_cookies(self, response: Any, request: Any) -> None:
        headers = response.info()
        if "Set-Cookie" in headers or "Set-Cookie2" in headers:
            super().extract_cookies(response, request)


def install(session: Any) -> None:
    """Give a FastHttpSession (and its user agent) a QuickCookieJar, keeping any cookie."""
    jar = QuickCookieJar()
    for cookie in session.cookiejar:
        jar.set_cookie(cookie)
    session.cookiejar = jar
    session.client.cookiejar = jar

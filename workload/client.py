"""The Archivist API as one person uses it, on top of the user's FastHttp client.

This client, not the tasks, knows:

- the routes and the auth mode (bearer token, CSRF header, or none), taken from the run's
  route profile in ``config/routes/`` (``--routes``; the API contract is the default);
- how requests are named in the statistics: ``/api/vods/{id}`` is shown as
  ``/api/vods/[id]``, so ids never explode the stats table;
- how each answer is judged (workload.judging). The verdict is reported as the request's
  one event through ``environment.events.request``, as a custom client does, with the
  timing Locust's own client takes (its ``catch_response`` context manager would cost
  about 5 % of a process's requests/s);
- which writes were acknowledged: they go to the ledger (workload.ledger), so none
  escapes it.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import quote_plus

import gevent
from locust import FastHttpUser
from locust.contrib.fasthttp import FAILURE_EXCEPTIONS, ErrorResponse, absolute_http_url_regexp
from locust.exception import CatchResponseError

from workload.judging import (
    KnownDefect,
    RateLimited,
    Reply,
    SkippedTask,
    WorkflowFailed,
    judge,
)
from workload.ledger import LEDGER
from workload.observations import OBSERVATIONS
from workload.routes import WRITE_METHODS, MissingRoute, Profile
from workload.settings import workload
from workload.tally import COVERAGE


@dataclass
class Session:
    """Credentials one simulated person holds."""

    username: str = ""
    access_token: str = ""
    refresh_token: str = ""
    expires_at: float = 0.0
    csrf_token: str = ""
    cookie: str = ""  # "name=value" of a CSRF profile's session cookie


@dataclass
class ApiClient:
    """The Archivist API as one person uses it, on top of the user's FastHttp client."""

    user: FastHttpUser
    profile: Profile
    session: Session = field(default_factory=Session)
    sent: int = 0  # requests sent so far (the task tally compares it before and after)
    _bearer_of: str | None = field(default=None, repr=False)
    _bearer: dict[str, str] = field(default_factory=dict, repr=False)

    def send(
        self,
        route_key: str,
        *,
        vod_id: object = None,
        json_body: Any = None,
        raw: str | bytes | None = None,
        query: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        expect: Iterable[int] = (200,),
        code: str | None = None,
        authed: bool = True,
        name: str | None = None,
        path: str | None = None,
        method: str | None = None,
        check: Callable[[Any], str] | None = None,
    ) -> Reply:
        """One request, judged against `expect` (and the error `code` for an error).

        `check` looks further into an acceptable body and returns why it is wrong ('' if
        right). Acknowledged writes go to the ledger here, so none escapes it.
        """
        try:
            route = self.profile.route(route_key) if path is None else None
        except MissingRoute as exc:
            raise SkippedTask(str(exc)) from None
        self.sent += 1
        if route is not None:
            COVERAGE.routes[route_key] += 1
        verb = method or (route.method if route else "GET")
        url = path or (route.path(vod_id) if route else "/")
        if query:
            url += "?" + query_string(query)
        auth = self.auth_headers(verb) if authed else None
        hdrs = {**auth, **headers} if auth and headers else dict(auth or headers or {})
        if self.profile.headers:
            hdrs = {**self.profile.headers, **hdrs}
        full_url, resp, content, started, elapsed_ms, problem = self._exchange(
            verb, url, hdrs, json_body, raw
        )
        reply = Reply(resp.status_code or 0, content, False)
        reply.headers = getattr(resp, "headers", None)
        if not problem:
            problem = judge(reply, expect, code, self.profile.error_shape)
            if not problem and check is not None:
                problem = check(reply.body)
        # The request's one event, with our verdict, as catch_response would report it.
        self.user.environment.events.request.fire(
            request_type=verb,
            name=name or (route.name if route else url),
            response_time=elapsed_ms,
            response_length=len(content) if content else 0,
            exception=self._outcome(route_key, reply.status, problem) if problem else None,
            context=self.user.context(),
            response=resp,
            start_time=started,
            url=full_url,
        )
        reply.ok, reply.problem = not problem, problem
        if reply.ok and 200 <= reply.status < 300:
            self._acknowledge(route_key, vod_id, json_body, hdrs, reply)
            if route_key in OBSERVATIONS.checks:  # reads checked against the data
                OBSERVATIONS.observe(route_key, vod_id, reply)
        elif reply.status >= 500 and route_key in self.profile.ledger_fields:
            route = self.profile.routes[route_key]  # refused: was anything half-written?
            request = f"{route.method} {route.template}"
            LEDGER.record_refused(request, reply.status, {"values": {"{id}": vod_id}})
        return reply

    def _outcome(self, route_key: str, status: int, problem: str) -> CatchResponseError:
        """The failure's class: rate limited, a defect the profile lists, or unexplained."""
        if status == 429:
            return RateLimited(f"429 rate limited: {problem}")
        defect = self.profile.defects.get(route_key)
        if defect is not None and status in defect.status:
            return KnownDefect(f"known defect of the app ({route_key}): {defect.why}")
        return CatchResponseError(problem)

    def _exchange(
        self,
        verb: str,
        url: str,
        headers: dict[str, str],
        json_body: Any,
        raw: str | bytes | None,
    ) -> tuple[str, Any, bytes | None, float, float, str]:
        """Send one request the way FastHttpSession.request does, without reporting it.

        Same default headers, JSON encoding, connection-error handling and timing as
        Locust's own client, so the request event carries the figures Locust would have.
        Adds to `headers`. Returns (URL, response, body, start time, response time in ms,
        problem: '' unless there was no complete answer); the response is Locust's
        ErrorResponse, status 0, when nothing came back.
        """
        http = self.user.client
        if http.auth_header:  # credentials in --host: Locust's client sends them instead
            headers["Authorization"] = http.auth_header
        if "Accept-Encoding" not in headers and "accept-encoding" not in headers:
            headers["Accept-Encoding"] = "gzip, deflate, br"
        payload = raw
        if raw is None and json_body is not None:
            payload = json.dumps(json_body)
            if "Content-Type" not in headers and "content-type" not in headers:
                headers["Content-Type"] = "application/json"
            if "Accept" not in headers and "accept" not in headers:
                headers["Accept"] = "application/json"
        absolute = url[:1] != "/" and absolute_http_url_regexp.match(url)
        full_url = url if absolute else f"{http.base_url}{url}"
        started, t0 = time.time(), time.perf_counter()
        resp: Any  # FastResponse (ErrorResponse is one too); `error` is set on failures
        try:
            resp = http.client.urlopen(full_url, method=verb, payload=payload, headers=headers)
        except FAILURE_EXCEPTIONS as exc:
            resp = getattr(exc, "response", None)
            if resp is not None:  # a status Locust's client calls bad: we judge it ourselves
                resp.error = exc
            else:  # no answer at all: a stand-in response with status 0, as Locust makes
                req = http.client._make_request(
                    full_url, method=verb, headers=headers, payload=payload
                )
                resp = ErrorResponse(req, exc)
        problem = ""
        try:
            content = resp.content
        except FAILURE_EXCEPTIONS as exc:  # the answer broke off in the body
            content, problem = None, f"no answer: {exc}"
        if not resp.status_code:
            problem = f"no answer: {getattr(resp, 'error', None)}"
        elapsed_ms = (time.perf_counter() - t0) * 1000.0
        return full_url, resp, content, started, elapsed_ms, problem

    # -- auth --

    def auth_headers(self, method: str) -> Mapping[str, str]:
        """The auth headers of a request (shared between requests: copy before changing)."""
        mode = self.profile.auth_mode
        if mode == "bearer":
            if time.time() > self.session.expires_at - 10 and self.session.username:
                self.login(self.session.username)
            if self._bearer_of != self.session.access_token:
                self._bearer_of = self.session.access_token
                self._bearer = {"Authorization": f"Bearer {self._bearer_of}"}
            return self._bearer
        if mode == "csrf" and method in WRITE_METHODS:
            if not self.session.csrf_token:
                self.fetch_csrf_token()
            headers = {self.profile.csrf_header: self.session.csrf_token}
            if self.session.cookie:
                headers["Cookie"] = self.session.cookie
            if self.profile.referer:
                headers["Referer"] = f"{self.user.client.base_url}/"
            return headers
        return {}

    def fetch_csrf_token(self) -> Reply:
        """GET the CSRF token, and keep the session cookie that holds its secret.

        The cookie is sent back by hand: a Secure cookie (Flask in production) never
        leaves a cookie jar over plain HTTP, and the token is worthless without it.
        """
        reply = self.send(self.profile.csrf_route, authed=False)
        self.session.csrf_token = str(reply.get(self.profile.csrf_field, ""))
        wanted = self.profile.session_cookie
        if wanted and reply.headers is not None:
            for header in reply.headers.getlist("set-cookie"):
                name, _, rest = header.partition("=")
                if name.strip() == wanted:
                    self.session.cookie = f"{wanted}={rest.split(';', 1)[0]}"
        return reply

    def login(self, username: str, password: str | None = None) -> Reply:
        """Log in (bearer profiles); a CSRF or no-auth profile has nothing to do."""
        self.session.username = username
        if self.profile.auth_mode != "bearer":
            return Reply(200, None, True)
        creds = {"username": username, "password": password or workload().accounts.password}
        reply = self.send("login", json_body=creds, authed=False)
        if reply.ok:
            self.adopt_tokens(reply)
        else:
            self.session.expires_at = time.time() + 5  # retry the login in a few seconds
        return reply

    def adopt_tokens(self, reply: Reply) -> None:
        self.session.access_token = str(reply.get("access_token", ""))
        self.session.refresh_token = str(reply.get("refresh_token", ""))
        self.session.expires_at = time.time() + float(reply.get("expires_in", 60))

    # -- explicit sessions, for the auth workflows --

    def open_session(
        self,
        username: str,
        password: str | None = None,
        expect: Iterable[int] = (200,),
        name: str | None = None,
    ) -> Reply:
        """A login that does not replace this person's own session."""
        creds = {"username": username, "password": password or workload().accounts.password}
        return self.send(
            "login", json_body=creds, authed=False, expect=expect, code=_code(expect), name=name
        )

    def as_bearer(
        self, route_key: str, token: str, expect: Iterable[int] = (200,), **kw: Any
    ) -> Reply:
        """`route_key` called with `token` (not this person's own session)."""
        headers = {"Authorization": f"Bearer {token}"}
        return self.send(
            route_key, headers=headers, authed=False, expect=expect, code=_code(expect), **kw
        )

    # -- VODs: the writes record what was acknowledged in the ledger (see _acknowledge) --

    def list_vods(self, **query: Any) -> Reply:
        return self.send("list_vods", query=query)

    def get_vod(self, vod_id: int, name: str | None = None) -> Reply:
        return self.send("get_vod", vod_id=vod_id, name=name)

    def create_vod(self, **fields: Any) -> Reply:
        key = new_idempotency_key()
        return self.send(
            "create_vod", json_body=fields, headers={"Idempotency-Key": key}, expect=(201, 200)
        )

    def update_vod(self, vod_id: int, version: int, **fields: Any) -> Reply:
        return self.send(
            "update_vod", vod_id=vod_id, json_body=fields, headers={"If-Match": str(version)}
        )

    def delete_vod(self, vod_id: int) -> Reply:
        return self.send("delete_vod", vod_id=vod_id, expect=(204,))

    def process(self, vod_id: int) -> Reply:
        return self.send("process_vod", vod_id=vod_id, expect=(202,))

    def must(self, reply: Reply, *keys: str) -> dict[str, Any]:
        """The reply's JSON object (with `keys`), or WorkflowFailed: the next step needs it."""
        if not reply.ok:
            raise WorkflowFailed(reply.problem)
        body = reply.body if isinstance(reply.body, dict) else {}
        if missing := [k for k in keys if k not in body]:
            raise WorkflowFailed(f"the answer lacks {', '.join(missing)}")
        return body

    def wait_until(
        self, vod_id: int, status: str, timeout_s: float, poll_s: float
    ) -> dict[str, Any]:
        """Poll the VOD until it reaches `status` (bounded by `timeout_s`); `failed` ends it."""
        deadline = time.monotonic() + timeout_s
        name = f"{self.profile.route('get_vod').name} (poll)"
        while True:
            vod = self.must(self.get_vod(vod_id, name=name))
            if vod.get("status") == status:
                if status == "published":
                    self.record_published(vod)
                return vod
            if vod.get("status") == "failed":
                raise WorkflowFailed(f"VOD {vod_id} failed: {vod.get('failure_reason')}")
            if time.monotonic() > deadline:
                raise WorkflowFailed(f"VOD {vod_id} still {vod.get('status')} after {timeout_s}s")
            gevent.sleep(poll_s)

    def verify_in_cablecast(self, vod: Mapping[str, Any], base_url: str) -> None:
        """The published VOD exists in Cablecast under the show the Archivist told us."""
        cc_vod, cc_show = vod.get("cablecast_vod_id"), vod.get("cablecast_show_id")
        if not isinstance(cc_vod, int) or not isinstance(cc_show, int):
            raise WorkflowFailed(f"VOD {vod.get('id')} published without Cablecast ids")
        reply = self.send(
            "",
            path=f"{base_url.rstrip('/')}/vods/{cc_vod}",
            name="cablecast /vods/[id]",
            headers=cablecast_auth_headers(),
            authed=False,
        )
        found = self.must(reply).get("vod") or {}
        if found.get("show") != cc_show:
            raise WorkflowFailed(
                f"Cablecast VOD {cc_vod} has show {found.get('show')}, Archivist told {cc_show}"
            )

    def _acknowledge(
        self, route_key: str, vod_id: object, body: Any, headers: Mapping[str, str], reply: Reply
    ) -> None:
        noted = self.profile.ledger_fields.get(route_key)
        if noted is not None:
            route = self.profile.routes[route_key]
            values = {f: vod_id if f == "{id}" else reply.get(f) for f in noted}
            told = {"values": values, "status": reply.status}
            LEDGER.record_ack(f"{route.method} {route.template}", told)
            return
        if route_key == "create_vod" and isinstance(reply.body, dict) and "id" in reply.body:
            LEDGER.record(
                "created",
                reply.body["id"],
                idempotency_key=headers.get("Idempotency-Key"),
                version=reply.get("version"),
                status=reply.get("status"),
                title=reply.get("title"),
            )
        elif route_key == "update_vod" and isinstance(vod_id, int):
            fields = body if isinstance(body, dict) else {}
            LEDGER.record("updated", vod_id, version=reply.get("version"), fields=fields)
        elif route_key == "delete_vod" and isinstance(vod_id, int):
            LEDGER.record("deleted", vod_id)

    def record_published(self, vod: Mapping[str, Any]) -> None:
        LEDGER.record(
            "published",
            vod["id"],
            cablecast_show_id=vod.get("cablecast_show_id"),
            cablecast_vod_id=vod.get("cablecast_vod_id"),
            version=vod.get("version"),
        )


def query_string(query: Mapping[str, Any]) -> str:
    """`urlencode` without the None values; numbers skip the (costly) quoting."""
    return "&".join(
        [
            f"{k}={v}" if isinstance(v, int) else f"{k}={_quoted(str(v))}"
            for k, v in query.items()
            if v is not None
        ]
    )


# Query values repeat (statuses, words, cursors of a page walk): quote each once.
_quoted = lru_cache(maxsize=4096)(quote_plus)


def new_idempotency_key() -> str:
    """A random UUID (version 4) as text, like str(uuid.uuid4()) at less than half its cost."""
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@lru_cache(maxsize=1)
def cablecast_auth_headers() -> Mapping[str, str]:
    """Basic auth of the Cablecast API (config/archivist.toml), encoded once."""
    user, password = workload().accounts.cablecast_auth
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def _code(expect: Iterable[int]) -> str | None:
    """The contract's error code for a single expected error status."""
    codes = {401: "unauthorized", 404: "not_found", 409: "conflict", 429: "rate_limited"}
    expected = tuple(expect)
    return codes.get(expected[0]) if len(expected) == 1 else None

"""Shared plumbing of the Archivist workloads: the API client, auth, request naming, ledger.

Every locustfile imports its users' base class from here, so a task body stays a few
lines a VOD operator could read. This module, not the tasks, knows:

- the routes and the auth mode (bearer token, CSRF header, or none), taken from a route
  profile in ``config/routes/`` (``--routes``; the API contract is the default);
- how requests are named in the statistics: ``/api/vods/{id}`` is shown as
  ``/api/vods/[id]``, so ids never explode the stats table;
- what an acceptable answer is: every request states the statuses it expects; anything
  else (and every 5xx) is a failure, and an expected error must have the contract's shape
  ``{"error": {"code", "message", ...}}`` with the expected code. The verdict is reported
  as the request's one event through ``environment.events.request``, as a custom client
  does, with the timing Locust's own client takes (its ``catch_response`` context manager
  would cost about 5 % of a process's requests/s);
- the ledger: every ACKNOWLEDGED write (created, updated, deleted, published) is appended,
  per process, to ``ledger-<pid>.jsonl`` in the run folder, buffered and flushed at test
  stop and quit, so an audit can compare what the service promised with the database.

Tags name the area a task exercises, so ``-T`` selects a phase: ``db`` (writes and
searches that hit PostgreSQL), ``api`` (cached reads), ``external`` (Cablecast: publishing
and shows), ``system`` (health), ``auth`` and ``invalid``.

Locust is extended only through its events and ``environment.parsed_options``.
"""

from __future__ import annotations

import base64
import functools
import itertools
import json
import logging
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import gevent
from locust import FastHttpUser, events
from locust.contrib.fasthttp import FAILURE_EXCEPTIONS, ErrorResponse, absolute_http_url_regexp
from locust.env import Environment
from locust.exception import CatchResponseError, RescheduleTask
from locust.runners import MasterRunner, WorkerRunner

import analysis.capture  # noqa: F401  (registers the capture plug-in for every locustfile)
from analysis.capture import record_in_meta, run_dir_of
from locustfiles import cookies, links, source_address, target
from locustfiles.coverage import Coverage, findings, summary_lines
from locustfiles.routes import WRITE_METHODS, MissingRoute, Profile, users_for
from locustfiles.tomlconfig import CONFIG_DIR, ConfigError, load_toml

WORKLOAD_TOML = CONFIG_DIR / "workload.toml"

# Areas (Locust tags); `-T db` runs only the tasks of that phase.
DB, API, EXTERNAL, SYSTEM, AUTH, INVALID = "db", "api", "external", "system", "auth", "invalid"
LEDGER_FLUSH_ENTRIES = 1000
_compact_json = json.JSONEncoder(separators=(",", ":")).encode  # json.dumps makes one per call


log = logging.getLogger(__name__)


class SkippedTask(RescheduleTask):
    """The deployment lacks a route this task needs: the task is skipped, not failed."""


class RateLimited(CatchResponseError):
    """429: the service's rate limit, an outcome of its own in the failure statistics."""


class KnownDefect(CatchResponseError):
    """An answer the route profile lists as the app's own defect (``[defects]``), counted
    apart from the failures the workload cannot explain."""


# --- settings ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Accounts:
    """Seeded users of the stack (config/archivist.toml), split into pools by purpose.

    Lock-out and wrong-password attempts use dedicated users at the end of the seeded list,
    so locking them out never disturbs the users that drive the VOD workflows.
    """

    names: tuple[str, ...]
    password: str
    lockout: tuple[str, ...]
    wrong_password: tuple[str, ...]
    max_failed_logins: int
    cablecast_auth: tuple[str, str]

    @property
    def regular(self) -> tuple[str, ...]:
        reserved = set(self.lockout) | set(self.wrong_password)
        return tuple(n for n in self.names if n not in reserved)


@dataclass(frozen=True)
class Workload:
    """config/workload.toml: pacing and limits of the workflows."""

    raw: dict[str, Any]
    accounts: Accounts

    def section(self, name: str) -> dict[str, Any]:
        return dict(self.raw.get(name, {}))

    @classmethod
    def load(cls, path: Path = WORKLOAD_TOML) -> Workload:
        raw = load_toml(path)
        archivist_path = Path(os.environ.get("ARCHIVIST_CONFIG") or CONFIG_DIR / "archivist.toml")
        app = load_toml(archivist_path)
        try:
            users = app["users"]
            names = tuple(users["name_pattern"].format(n=n) for n in range(1, users["count"] + 1))
            password = users["password"]
            max_failed = int(app["auth"]["max_failed_logins"])
            cablecast = (app["cablecast"]["username"], app["cablecast"]["password"])
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"{archivist_path}: missing or malformed {exc}") from None
        pools = raw.get("users", {})
        n_lock, n_wrong = int(pools.get("lockout", 2)), int(pools.get("wrong_password", 2))
        if n_lock + n_wrong >= len(names):
            raise ConfigError(
                f"{path}: users.lockout + users.wrong_password = {n_lock + n_wrong} leaves no "
                f"regular user of the {len(names)} seeded in {archivist_path}"
            )
        lockout = names[len(names) - n_lock :]
        wrong = names[len(names) - n_lock - n_wrong : len(names) - n_lock]
        accounts = Accounts(names, password, lockout, wrong, max_failed, cablecast)
        return cls(raw, accounts)


_workload: Workload | None = None


def workload() -> Workload:
    global _workload
    if _workload is None:
        _workload = Workload.load()
    return _workload


_user_numbers = itertools.count()


def next_regular_user() -> str:
    """Round-robin over the regular pool, offset by pid so processes spread out."""
    pool = workload().accounts.regular
    return pool[(next(_user_numbers) + os.getpid()) % len(pool)]


# --- the ledger -------------------------------------------------------------------------


class Ledger:
    """What the service acknowledged, one JSON line per write, per process.

    Buffered in memory (no I/O per request) and appended to ``ledger-<pid>.jsonl`` at test
    stop, at quit, and every ``LEDGER_FLUSH_ENTRIES`` entries.
    """

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []
        self.path: Path | None = None

    def record(self, kind: str, vod_id: int, **fields: Any) -> None:
        self.entries.append({"ts": time.time(), "kind": kind, "id": int(vod_id), **fields})
        if len(self.entries) >= LEDGER_FLUSH_ENTRIES:
            self.flush()

    def record_ack(self, request: str, values: Mapping[str, Any]) -> None:
        """An acknowledged write of a profile audited by tables ([audit] checks = "tables"):
        the request and the answer's key fields its durable-write rules look up."""
        self.entries.append({"ts": time.time(), "kind": "ack", "request": request, **values})
        if len(self.entries) >= LEDGER_FLUSH_ENTRIES:
            self.flush()

    def flush(self) -> None:
        if not self.entries or self.path is None:
            return
        entries, self.entries = self.entries, []
        with self.path.open("a") as out:
            out.writelines(_compact_json(e) + "\n" for e in entries)


LEDGER = Ledger()


@events.init.add_listener
def _open_ledger(environment: Environment, **_: Any) -> None:
    if not isinstance(environment.runner, MasterRunner):
        LEDGER.path = run_dir_of(environment) / f"ledger-{os.getpid()}.jsonl"


@events.test_stop.add_listener
def _flush_at_stop(**_: Any) -> None:
    LEDGER.flush()


@events.quitting.add_listener
def _flush_at_quit(**_: Any) -> None:
    LEDGER.flush()


# --- the API client ---------------------------------------------------------------------


_UNPARSED: Any = object()


@dataclass(slots=True)
class Reply:
    """One answer: status, body, and whether it was as expected.

    The JSON body is parsed on first use: most successful reads are never looked into,
    and parsing them all would be most of the plumbing's cost per request. (Not with
    functools.cached_property: on Python 3.11 it takes a lock at every first use.)
    """

    status: int
    content: bytes | None
    ok: bool
    problem: str = ""
    _body: Any = field(default=_UNPARSED, repr=False, compare=False)
    headers: Any = field(default=None, repr=False, compare=False)

    @property
    def body(self) -> Any:
        if self._body is _UNPARSED:
            self._body = parse_json(self.content)
        return self._body

    def get(self, key: str, default: Any = None) -> Any:
        return self.body.get(key, default) if isinstance(self.body, dict) else default


def error_shape_problem(body: Any, code: str | None) -> str:
    """'' if `body` is the contract's error shape (with `code`, when given), else why not."""
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        return 'error body is not {"error": {...}}'
    if not isinstance(err.get("code"), str) or not isinstance(err.get("message"), str):
        return "error lacks string code/message"
    if code is not None and err["code"] != code:
        return f"error code {err['code']!r}, expected {code!r}"
    return ""


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


def flat_error_problem(reply: Reply) -> str:
    """'' if an error answer has the Flask Archivist's shape: {"error": "<text>", ...} or an
    HTML page (what Flask and its extensions answer on their own), else why not."""
    if (reply.content or b"").lstrip()[:1] == b"<":
        return ""
    err = reply.body.get("error") if isinstance(reply.body, dict) else None
    return "" if isinstance(err, str) else 'error body is neither {"error": "<text>"} nor HTML'


def judge(reply: Reply, expect: Iterable[int], code: str | None, shape: str = "contract") -> str:
    """Why an answer is unacceptable ('' if acceptable)."""
    if reply.status < 400 and reply.status in expect:
        return ""  # the common case, kept cheap
    expected = tuple(expect)
    if reply.status not in expected:
        snippet = (reply.content or b"")[:200].decode("utf-8", "replace")
        return f"status {reply.status}, expected {'/'.join(map(str, expected))} {snippet}".strip()
    if reply.status >= 400:
        if shape == "flat":
            return flat_error_problem(reply)
        return error_shape_problem(reply.body, code)
    return ""


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
            LEDGER.record_ack(f"{route.method} {route.template}", {"values": values})
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


_decode_json = json.JSONDecoder().decode


def parse_json(content: bytes | None) -> Any:
    """The JSON value of a body, None if there is none or it is not JSON."""
    if not content:
        return None
    try:
        return _decode_json(content.decode())  # UTF-8, as JSON over HTTP is
    except ValueError:
        pass
    try:
        return json.loads(content)  # the other encodings json accepts (UTF-16/32, a BOM)
    except ValueError:
        return None


# --- the base user and the end-to-end timing ----------------------------------------------


class WorkflowFailed(Exception):
    """A multi-step workflow did not reach its goal; reported on its WORKFLOW entry."""


def report_workflow(
    environment: Environment, name: str, started: float, error: Exception | None
) -> None:
    """Report an end-to-end workflow as one Locust entry (type WORKFLOW) with percentiles."""
    environment.events.request.fire(
        request_type="WORKFLOW",
        name=name,
        response_time=(time.perf_counter() - started) * 1000.0,
        response_length=0,
        exception=error,
        context={},
    )


def fake_title(rng: random.Random | None = None) -> str:
    r = rng or random
    words = ("council", "meeting", "budget", "parade", "school", "board", "forum", "concert")
    return f"{r.choice(words).title()} {r.choice(words)} {r.randint(1, 99_999)}"


def fake_vod(rng: random.Random | None = None) -> dict[str, Any]:
    r = rng or random.Random()
    title = fake_title(r)
    return {
        "title": title,
        "description": f"Recording of the {title.lower()}",
        "file_name": f"{title.lower().replace(' ', '-')}.mp4",
        "duration_s": r.randint(60, 7200),
        "size_bytes": r.randint(10_000_000, 4_000_000_000),
    }


# --- nothing silent: every task run tallied (see locustfiles/coverage.py) -----------------

COVERAGE = Coverage()
_worker_reports: dict[str, dict[str, Any]] = {}
_logged_skips: set[tuple[str, str]] = set()


def uses(*route_keys: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare the profile routes a task needs: without one of them it is skipped (and
    counted as such), and a declared route that never gets a request is reported."""

    def mark(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn.locust_routes = frozenset(route_keys)  # type: ignore[attr-defined]
        return fn

    return mark


def _tallied(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The task, counting each run as sent / skipped (with the reason) / did nothing."""
    needs = sorted(getattr(fn, "locust_routes", ()))

    @functools.wraps(fn)
    def run(user: ArchivistUser) -> Any:
        key = f"{type(user).__name__}.{fn.__name__}"
        tally = COVERAGE.task(key)
        tally.runs += 1
        before, finished = user.api.sent, False
        try:
            missing = [r for r in needs if not user.api.profile.has(r)]
            if missing:
                raise SkippedTask(
                    f"needs route {missing[0]!r}, not in profile {user.api.profile.name!r}"
                )
            result = fn(user)
            finished = True
            return result
        except SkippedTask as exc:
            tally.skipped[str(exc)] += 1
            if (key, str(exc)) not in _logged_skips:
                _logged_skips.add((key, str(exc)))
                log.warning("task %s skipped: %s", key, exc)
            raise
        finally:
            sent = user.api.sent - before
            tally.requests += sent
            if sent:
                tally.sent += 1
            elif finished:  # not skipped, not cut short (a stop, an error): did nothing
                tally.idle += 1

    run.__dict__["_tallied"] = True
    return run


class ArchivistUser(FastHttpUser):
    """A person using Archivist: logs in at start, then acts through `self.api`."""

    abstract = True

    # Profiles this user class is written for (config/routes/*.toml `users`); empty: the
    # contract's users, spawned for every profile that lists no users of its own.
    for_profiles: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Every task of every workload is tallied; no task author has to remember it."""
        super().__init_subclass__(**kwargs)
        wrapped: dict[Any, Any] = {}
        tasks = []
        for t in cls.tasks:
            if callable(t) and not hasattr(t, "tasks") and not getattr(t, "_tallied", False):
                if t not in wrapped:
                    wrapped[t] = _tallied(t)
                t = wrapped[t]
            tasks.append(t)
        cls.tasks = tasks

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        COVERAGE.users[type(self).__name__] += 1
        cookies.install(self.client)  # same cookies, less CPU per request (see cookies.py)
        self.source_address = source_address.bind_user(self)
        self.api = ApiClient(self, profile_of(environment))
        self.settings = workload()
        seed = os.environ.get("LOADKIT_SEED")
        number = next(_user_numbers)
        self.rng = random.Random(None if seed is None else f"{seed}:{os.getpid()}:{number}")

    def on_start(self) -> None:
        self.api.login(next_regular_user())

    @property
    def cablecast_url(self) -> str:
        opts = self.environment.parsed_options
        chosen = getattr(opts, "cablecast_url", "")
        return chosen or target.default_cablecast_url(target.stack_config_of(self.environment))

    @contextmanager
    def workflow(self, name: str) -> Iterator[None]:
        """Time the steps inside as one WORKFLOW entry; a WorkflowFailed marks it failed."""
        started, error = time.perf_counter(), None
        try:
            yield
        except WorkflowFailed as exc:
            error = exc
        report_workflow(self.environment, name, started, error)


_profiles: dict[str, Profile] = {}


def profile_of(environment: Environment) -> Profile:
    name = getattr(environment.parsed_options, "routes", None) or "contract"
    if name not in _profiles:
        _profiles[name] = Profile.load(name)
    return _profiles[name]


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any) -> None:
    parser.add_argument(
        "--routes",
        default="contract",
        include_in_web_ui=True,
        help="Route/auth profile: a name in config/routes/ or a .toml path (default: contract)",
    )
    parser.add_argument(
        "--cablecast-url",
        default="",
        include_in_web_ui=True,
        help="Cablecast API base for verifying published VODs "
        "(default: the simulator of config/stack.toml)",
    )
    parser.add_argument(
        "--arrival-rate",
        type=float,
        default=0.0,
        include_in_web_ui=True,
        help="Open model: requests/s per OpenModelReader user, Poisson arrivals "
        "(default: open_model.rate_per_user in config/workload.toml)",
    )
    parser.add_argument(
        "--allow-silent",
        action="store_true",
        default=False,
        help="List silent user classes and unexercised routes but do not fail the run on "
        "them: for measurement slices shorter than the workload's cycle (the paired gate)",
    )
    target.add_arguments(parser)
    links.add_arguments(parser)


def has_tagged_tasks(user_class: type, tags: set[str] | None, exclude: set[str] | None) -> bool:
    """Whether `-T`/`-E` leave the class any task (TaskSets count as having tasks)."""
    for t in getattr(user_class, "tasks", []):
        found = set(getattr(t, "locust_tag_set", set()))
        if (tags is None or found & tags) and not (exclude and found & exclude):
            return True
    return False


@events.init.add_listener
def _drop_users_without_tasks(environment: Environment, **_: Any) -> None:
    """With `-T db`, the auth or open-model users have nothing to do: do not spawn them.

    Locust would spawn them anyway and log "No tasks defined" for each; pruning the list,
    as Locust itself does for weight-0 classes, keeps a tag-selected phase clean.
    """
    opts = environment.parsed_options
    tags = set(opts.tags) if opts is not None and getattr(opts, "tags", None) else None
    exclude = (
        set(opts.exclude_tags) if opts is not None and getattr(opts, "exclude_tags", None) else None
    )
    if tags is None and exclude is None:
        return
    kept = [c for c in environment.user_classes if has_tagged_tasks(c, tags, exclude)]
    if not kept:
        raise SystemExit(f"error: no user class has tasks for tags {sorted(tags or [])}")
    environment.user_classes[:] = kept


@events.init.add_listener
def _users_of_the_profile(environment: Environment, **_: Any) -> None:
    """`--routes archivist-flask` spawns that deployment's users, not the contract's."""
    try:
        profile = profile_of(environment)
    except ConfigError:
        return  # _check_config reports it
    kept = users_for(profile, list(environment.user_classes), ArchivistUser)
    if not kept:
        raise SystemExit(
            f"error: no user class of these locustfiles is written for profile "
            f"{profile.name!r} (it names {', '.join(profile.users) or 'none'})"
        )
    environment.user_classes[:] = kept
    if isinstance(environment.user_classes_by_name, dict):
        for name in list(environment.user_classes_by_name):
            if environment.user_classes_by_name[name] not in kept:
                del environment.user_classes_by_name[name]


@events.init.add_listener
def _check_config(environment: Environment, **_: Any) -> None:
    """Fail at start, with the file named, rather than in every user."""
    try:
        profile_of(environment)
        workload()
    except ConfigError as exc:
        raise SystemExit(f"error: {exc}") from None


def _task_passes(task: Any, tags: set[str] | None, exclude: set[str] | None) -> bool:
    found = set(getattr(task, "locust_tag_set", set()))
    return (tags is None or bool(found & tags)) and not (exclude and found & exclude)


def _declared_and_selected(environment: Environment) -> tuple[dict[str, frozenset[str]], set[str]]:
    """Routes each loaded task declares, and the tasks this run selected (classes, -T, -E)."""
    opts = environment.parsed_options
    tags = set(opts.tags) if opts is not None and getattr(opts, "tags", None) else None
    exclude = (
        set(opts.exclude_tags) if opts is not None and getattr(opts, "exclude_tags", None) else None
    )
    loaded = _loaded_classes(environment)
    chosen = {c.__name__ for c in environment.user_classes}
    declared: dict[str, frozenset[str]] = {}
    selected: set[str] = set()
    for cls in loaded:
        if not isinstance(cls, type) or not issubclass(cls, ArchivistUser):
            continue
        for t in _ORIGINAL_TASKS.get(cls, cls.tasks):
            if hasattr(t, "tasks"):
                continue
            key = f"{cls.__name__}.{t.__name__}"
            declared[key] = frozenset(getattr(t, "locust_routes", ()))
            if cls.__name__ in chosen and _task_passes(t, tags, exclude):
                selected.add(key)
    return declared, selected


_ORIGINAL_TASKS: dict[type, list[Any]] = {}


def _loaded_classes(environment: Environment) -> list[Any]:
    """Every user class of the locustfiles (not only those chosen on the command line)."""
    available: dict[str, Any] = dict(environment.available_user_classes or {})
    return list(available.values()) or list(environment.user_classes)


@events.init.add_listener
def _remember_tasks(environment: Environment, **_: Any) -> None:
    """The task lists before Locust filters them by tag (it edits the classes in place)."""
    for cls in _loaded_classes(environment):
        if isinstance(cls, type) and issubclass(cls, ArchivistUser):
            _ORIGINAL_TASKS.setdefault(cls, list(cls.tasks))


@events.report_to_master.add_listener
def _report_coverage(client_id: str, data: dict[str, Any], **_: Any) -> None:
    data["archivist_coverage"] = COVERAGE.to_json()  # cumulative: the last report wins


@events.worker_report.add_listener
def _collect_coverage(client_id: str, data: dict[str, Any], **_: Any) -> None:
    if "archivist_coverage" in data:
        _worker_reports[client_id] = data["archivist_coverage"]


def run_coverage(environment: Environment) -> tuple[Coverage, Any]:
    """This run's tally (every worker's, on a master) and its findings."""
    if isinstance(environment.runner, MasterRunner):
        coverage = Coverage.merged(_worker_reports.values())
    else:
        coverage = COVERAGE
    declared, selected = _declared_and_selected(environment)
    profile = profile_of(environment)
    found = findings(coverage, profile.name, profile.routes, declared, selected)
    return coverage, found


@events.quitting.add_listener
def _judge_coverage(environment: Environment, **_: Any) -> None:
    """List what was skipped or never exercised; a silent class or route ends the run non-zero."""
    if isinstance(environment.runner, WorkerRunner) or environment.parsed_options is None:
        return
    coverage, found = run_coverage(environment)
    if not coverage.users:
        return  # no Archivist user ran (a plug-in-only run): nothing to judge
    for line in summary_lines(coverage, found):
        log.info(line)
    record_in_meta(run_dir_of(environment), coverage={**coverage.to_json(), **found.to_json()})
    if found.problems:
        more = f" (and {len(found.problems) - 1} more above)" if len(found.problems) > 1 else ""
        if getattr(environment.parsed_options, "allow_silent", False):
            log.warning("the workload was silent (--allow-silent): %s%s", found.problems[0], more)
            return
        log.error("error: the workload was silent: %s%s", found.problems[0], more)
        environment.process_exit_code = 1

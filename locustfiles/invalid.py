"""Bad input on purpose: every case of the table in config/workload.toml (``[[invalid.cases]]``).

Malformed JSON, wrong types, missing fields, bodies over 1 MiB, unknown ids, header abuse
(huge headers, bad If-Match, bad Idempotency-Key, wrong Content-Type) and injection-looking
strings. Each request expects the EXACT status of its case and, for an error, the
contract's error shape with the case's code; a 5xx, another status, or a 2xx where an
error was due is a failure. Each case has its own line in the statistics
(``invalid: <case name>``), so a failure names the case.
"""

from __future__ import annotations

import itertools
import json
import uuid
from dataclasses import dataclass, field, fields
from typing import Any

from locust import between, tag, task
from locust.env import Environment

from workload.users import INVALID, ArchivistUser

from workload.fakes import fake_vod
from workload.settings import WORKLOAD_TOML, workload
from workload.shapes import SelectableShape  # noqa: F401  (Locust finds the shape here)
from workload.tomlconfig import ConfigError

INVALID_CFG = workload().section("invalid")
UNKNOWN_ID = 9_000_000_000_000_000_000  # a bigint no sequence will reach in a test
IDS: dict[str, object] = {"unknown": UNKNOWN_ID, "non-numeric": "abc", "huge": 2**63}
HUGE_TOKEN_BYTES = 8192
STRIDE = 17  # prime: successive users start far apart in the table
LONG_KEY_CHARS = 300


@dataclass(frozen=True)
class Case:
    """One row of the table: the request to make and what the contract says it gets."""

    name: str
    expect: int
    code: str | None = None
    route: str = ""
    method: str = ""
    path: str = ""
    id: str = ""
    json: Any = None
    raw: str | None = None
    pad_bytes: int = 0
    content_type: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    header_bytes: int = 0
    token: str = "valid"
    if_match: str = ""
    idem_key: str = ""
    echo: str = ""

    @classmethod
    def parse(cls, index: int, row: dict[str, Any]) -> Case:
        where = f"{WORKLOAD_TOML}: invalid.cases[{index}] ({row.get('name', '?')})"
        known = {f.name for f in fields(cls)}
        if unknown := sorted(set(row) - known):
            raise ConfigError(f"{where}: unknown keys {unknown}; known: {sorted(known)}")
        try:
            case = cls(**row)
        except TypeError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        if bool(case.route) == bool(case.path):
            raise ConfigError(f"{where}: give either route or method + path")
        if case.expect >= 400 and not case.code:
            raise ConfigError(f"{where}: an error case needs the expected error code")
        if case.id and case.id != "own" and case.id not in IDS:
            raise ConfigError(f"{where}: id {case.id!r}: expected own, {', '.join(IDS)}")
        if case.token not in ("valid", "none", "garbled", "huge"):
            raise ConfigError(f"{where}: token {case.token!r}: expected valid/none/garbled/huge")
        return case


def load_cases() -> list[Case]:
    rows = workload().section("invalid").get("cases", [])
    if not rows:
        raise ConfigError(f"{WORKLOAD_TOML}: no [[invalid.cases]]")
    return [Case.parse(i, row) for i, row in enumerate(rows)]


CASES = load_cases()
_starts = itertools.count()


@dataclass
class OwnVod:
    """The VOD this user created at start: the target of the "own" cases."""

    id: int
    version: int
    idempotency_key: str


class InvalidInput(ArchivistUser):
    """A careless or hostile client: walks the table of bad requests, case after case."""

    wait_time = between(INVALID_CFG["wait_min_s"], INVALID_CFG["wait_max_s"])

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        # Users start spread over the table, so a short run with a few users covers it all.
        self.turn = next(_starts) * STRIDE
        self.own: OwnVod | None = None

    def on_start(self) -> None:
        super().on_start()
        key = str(uuid.uuid4())
        vod = self.api.send(
            "create_vod",
            json_body=fake_vod(self.rng),
            headers={"Idempotency-Key": key},
            expect=(201,),
        )
        if vod.ok:
            self.own = OwnVod(int(vod.body["id"]), int(vod.body["version"]), key)

    @tag(INVALID)
    @task
    def next_bad_request(self) -> None:
        case = CASES[self.turn % len(CASES)]
        self.turn += 1
        if (case.id == "own" or case.idem_key == "reuse") and self.own is None:
            self.on_start()  # the VOD the case needs could not be created at start: retry
            return
        self.api.send(**self.request_of(case), name=f"invalid: {case.name}")

    def request_of(self, case: Case) -> dict[str, Any]:
        """The keyword arguments of `ApiClient.send` that make the case's request."""
        own = self.own
        headers: dict[str, str] = {**case.headers}
        kw: dict[str, Any] = {"expect": (case.expect,), "code": case.code, "query": case.query}
        if case.path:
            kw.update(route_key="", method=case.method, path=case.path)
        else:
            kw["route_key"] = case.route
        if case.id:
            kw["vod_id"] = own.id if case.id == "own" and own else IDS.get(case.id)
        body = self.body_of(case)
        if isinstance(body, str):
            kw["raw"] = body
            headers.setdefault("Content-Type", case.content_type or "application/json")
        else:
            kw["json_body"] = body
        kw["authed"] = case.token == "valid"
        if case.token == "garbled":
            headers["Authorization"] = f"Bearer {self.api.session.access_token[::-1]}x"
        elif case.token == "huge":
            headers["Authorization"] = "Bearer " + "A" * HUGE_TOKEN_BYTES
        if case.header_bytes:
            headers["X-Padding"] = "p" * case.header_bytes
        if case.if_match:
            version = own.version if own else 1
            special = {"current": str(version), "stale": str(version - 1)}
            headers["If-Match"] = special.get(case.if_match, case.if_match)
        if case.route == "create_vod":
            headers["Idempotency-Key"] = self.key_of(case)
        if case.echo:
            kw["check"] = echo_check(case.echo, body)
        kw["headers"] = headers
        return kw

    def body_of(self, case: Case) -> Any:
        if case.pad_bytes:
            return json.dumps(
                {"title": "Padded", "file_name": "pad.mp4", "description": "x" * case.pad_bytes}
            )
        if case.raw is not None:
            return case.raw
        if case.json is not None and case.content_type:
            return json.dumps(case.json)
        return case.json

    def key_of(self, case: Case) -> str:
        if case.idem_key == "reuse" and self.own:
            return self.own.idempotency_key
        if case.idem_key == "long":
            return "k" * LONG_KEY_CHARS
        return case.idem_key if case.idem_key not in ("", "fresh") else str(uuid.uuid4())


def echo_check(field_name: str, sent: Any) -> Any:
    """A body check: the field comes back exactly as sent (stored verbatim, not mangled)."""
    if isinstance(sent, str):
        sent = json.loads(sent)
    want = sent.get(field_name) if isinstance(sent, dict) else None

    def check(body: Any) -> str:
        got = body.get(field_name) if isinstance(body, dict) else None
        return "" if got == want else f"{field_name} came back as {got!r}, sent {want!r}"

    return check

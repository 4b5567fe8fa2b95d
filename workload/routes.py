"""Route/auth profiles (config/routes/*.toml): which Archivist routes exist, and how to log in.

The workflows name routes by key ("get_vod"); a profile maps each key to "METHOD /path".
The API contract is the default profile; another deployment (the Flask Archivist of
today) gets its own file, never an edit of the workflows. No Locust in here, so the
profiles are testable on their own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from workload.tomlconfig import CONFIG_DIR, ConfigError, load_toml

ROUTES_DIR = CONFIG_DIR / "routes"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class Route:
    method: str
    template: str  # "/api/vods/{id}"

    @cached_property
    def name(self) -> str:
        """The statistics name: ids collapsed to ``[id]``."""
        return self.template.replace("{id}", "[id]")

    def path(self, vod_id: object = None) -> str:
        return (
            self.template.replace("{id}", str(vod_id)) if "{id}" in self.template else self.template
        )


AUDIT_CHECKS = ("contract", "tables")


@dataclass(frozen=True)
class DurableWrite:
    """One rule of what "durable" means: an acknowledged `request` promises a row in
    `table` whose `column` equals the answer's JSON `field` ("{id}": the id in the path)."""

    request: str  # "POST /api/upload", as in [routes]
    field: str
    table: str
    column: str
    absent: bool = False  # a delete: the row must be gone


@dataclass(frozen=True)
class Publications:
    """[audit.publications]: every publication of `request` ("{id}" the transcription, the
    answer's `vod_field` the Cablecast VOD), acknowledged or refused, checked against the
    app's rows and the Cablecast simulator (experiments/audit_publish.py). `marker` is in
    the title of every show a publication makes (the seeded fixtures' names), which tells
    them from the shows the workload itself gives the simulator."""

    request: str
    vod_field: str
    marker: str


@dataclass(frozen=True)
class AuditRules:
    """[audit] of a profile: `contract` (the reference stack's own rules,
    experiments/audit_contract.py) or `tables` (each acknowledged write of `durable` checked
    in its table)."""

    checks: str
    durable: tuple[DurableWrite, ...] = ()
    not_durable: tuple[str, ...] = ()  # acknowledged, but the app keeps nothing by design
    # request of not_durable -> the answer field holding the id it told the client (noted
    # in the ledger, so "acknowledged, never stored" can name one)
    not_durable_id: dict[str, str] = field(default_factory=dict)
    publications: Publications | None = None


@dataclass(frozen=True)
class Defect:
    """A known defect of the deployment: on this route it answers `status`, for `why`.

    Such answers are counted as the app's own failures, apart from the toolkit's.
    """

    status: tuple[int, ...]
    why: str


@dataclass(frozen=True)
class OutageDefect:
    """What the deployment does wrong while one of its links is faulted ([[defects_during]]):
    on `routes` it answers `status` when `link` suffers `toxic` ("" any fault), for `why`.

    The workload cannot tell (it does not know when a fault is on); the verdict of an
    experiment names these answers as the app's defects (experiments.verdict)."""

    link: str
    toxic: str
    routes: tuple[str, ...]
    status: tuple[int, ...]
    why: str


ERROR_SHAPES = ("contract", "flat")


@dataclass(frozen=True)
class Profile:
    """Routes, auth mode and health check of one Archivist deployment."""

    name: str
    routes: dict[str, Route]
    auth_mode: str = "bearer"
    csrf_route: str = ""
    csrf_header: str = "X-CSRF-Token"
    csrf_field: str = "csrf_token"
    health_route: str = "health"
    health_ok_status: tuple[int, ...] = (200,)
    health_field: str = "status"
    health_ok_values: tuple[str, ...] = ("ok",)
    # A CSRF profile: the session cookie holding the token's secret, sent back by hand
    # (a Secure cookie never leaves the jar over HTTP), and whether writes need a Referer
    # (Flask-WTF over HTTPS refuses a write without a same-origin one).
    session_cookie: str = ""
    referer: bool = False
    # "contract": {"error": {"code", "message"}}; "flat": {"error": "<text>", ...}
    error_shape: str = "contract"
    expect: dict[str, tuple[int, ...]] = field(default_factory=dict)
    defects: dict[str, Defect] = field(default_factory=dict)
    defects_during: tuple[OutageDefect, ...] = ()
    # The Locust user classes written for this deployment (empty: the contract's users).
    users: tuple[str, ...] = ()
    # Sent with every request: e.g. X-Forwarded-Proto for an app behind a TLS proxy.
    headers: dict[str, str] = field(default_factory=dict)

    def expected(self, key: str, default: tuple[int, ...] = (200,)) -> tuple[int, ...]:
        """The statuses `key` answers when the deployment works as its code intends."""
        return self.expect.get(key, default)

    audit: AuditRules | None = None  # None: the profile says nothing about durability
    # route key -> answer fields to note in the ledger for the `tables` audit
    ledger_fields: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def has(self, key: str) -> bool:
        return key in self.routes

    def route(self, key: str) -> Route:
        try:
            return self.routes[key]
        except KeyError:
            raise MissingRoute(f"route {key!r} is not in profile {self.name!r}") from None

    @classmethod
    def load(cls, name_or_path: str) -> Profile:
        path = Path(name_or_path)
        if not path.suffix:
            path = ROUTES_DIR / f"{name_or_path}.toml"
        if not path.exists():
            known = ", ".join(sorted(p.stem for p in ROUTES_DIR.glob("*.toml")))
            raise ConfigError(f"--routes {name_or_path!r}: no such profile; known: {known}")
        data = load_toml(path)
        routes: dict[str, Route] = {}
        for key, spec in data.get("routes", {}).items():
            method, _, template = str(spec).partition(" ")
            if method.upper() not in {"GET", "HEAD", *WRITE_METHODS} or not template.startswith(
                "/"
            ):
                raise ConfigError(f'{path}: routes.{key} = "{spec}": expected "METHOD /path"')
            routes[key] = Route(method.upper(), template)
        auth, health = data.get("auth", {}), data.get("health", {})
        expect = {
            str(k): _statuses(path, f"expect.{k}", v) for k, v in data.get("expect", {}).items()
        }
        defects = {str(k): _defect(path, str(k), v) for k, v in data.get("defects", {}).items()}
        unknown = sorted((set(expect) | set(defects)) - set(routes))
        if unknown:
            raise ConfigError(
                f"{path}: [expect]/[defects] name unknown route(s) {', '.join(unknown)}"
            )
        during = _outage_defects(path, data.get("defects_during", []), routes)
        errors = data.get("errors", {})
        shape = errors.get("shape", "contract")
        if shape not in ERROR_SHAPES:
            raise ConfigError(
                f"{path}: errors.shape {shape!r}: expected {' or '.join(ERROR_SHAPES)}"
            )
        headers = data.get("headers", {})
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            raise ConfigError(f"{path}: [headers] must map header names to strings")
        users = data.get("users", [])
        if not isinstance(users, list) or not all(isinstance(u, str) for u in users):
            raise ConfigError(f"{path}: users must be a list of Locust user class names")
        mode = auth.get("mode", "bearer")
        if mode not in ("bearer", "csrf", "none"):
            raise ConfigError(f"{path}: auth.mode {mode!r}: expected bearer, csrf or none")
        audit = _audit_rules(path, data.get("audit"))
        profile = cls(
            name=data.get("name", path.stem),
            routes=routes,
            auth_mode=mode,
            csrf_route=auth.get("csrf_route", ""),
            csrf_header=auth.get("csrf_header", "X-CSRF-Token"),
            csrf_field=auth.get("csrf_field", "csrf_token"),
            health_route=health.get("route", "health"),
            health_ok_status=tuple(health.get("ok_status", [200])),
            health_field=health.get("field", "status"),
            health_ok_values=tuple(health.get("ok_values", ["ok"])),
            session_cookie=str(auth.get("session_cookie", "")),
            referer=bool(auth.get("referer", False)),
            error_shape=shape,
            expect=expect,
            defects=defects,
            defects_during=during,
            users=tuple(users),
            headers={str(k): v for k, v in headers.items()},
            audit=audit,
            ledger_fields=ledger_fields(routes, audit),
        )
        needed = {"bearer": ["login"], "csrf": [profile.csrf_route], "none": []}[mode]
        for key in [*needed, profile.health_route]:
            if key not in routes:
                raise ConfigError(f"{path}: auth/health need route {key!r} in [routes]")
        return profile


def users_for(profile: Profile, classes: list[type], base: type) -> list[type]:
    """The user classes to spawn for `profile`: the ones it names, or, if it names none,
    every `base` subclass not written for another deployment (`for_profiles` empty).
    Classes that are not `base` subclasses (shapes, other plug-ins' users) always stay."""

    def wanted(cls: type) -> bool:
        if not issubclass(cls, base):
            return True
        if profile.users:
            return cls.__name__ in profile.users
        return not getattr(cls, "for_profiles", ())

    return [cls for cls in classes if wanted(cls)]


def _statuses(path: Path, where: str, value: object) -> tuple[int, ...]:
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(s, int) and 100 <= s <= 599 for s in value)
    ):
        raise ConfigError(f"{path}: {where} = {value!r}: expected a list of HTTP statuses")
    return tuple(value)


def _defect(path: Path, key: str, value: object) -> Defect:
    if not isinstance(value, dict) or not isinstance(value.get("why"), str):
        raise ConfigError(f'{path}: defects.{key}: expected {{ status = [...], why = "..." }}')
    return Defect(_statuses(path, f"defects.{key}.status", value.get("status")), value["why"])


class MissingRoute(LookupError):
    """The deployment lacks a route a task needs (the API client skips the task)."""


def _outage_defects(path: Path, raw: object, routes: dict[str, Route]) -> tuple[OutageDefect, ...]:
    if not isinstance(raw, list) or not all(isinstance(d, dict) for d in raw):
        raise ConfigError(f"{path}: defects_during must be an array of tables ([[defects_during]])")
    found = []
    for i, entry in enumerate(raw):
        where = f"defects_during[{i}]"
        link, toxic, why = entry.get("link"), entry.get("toxic", ""), entry.get("why")
        keys = entry.get("routes")
        if not isinstance(link, str) or not link or not isinstance(toxic, str):
            raise ConfigError(f'{path}: {where}: needs link = "NAME" (and toxic = "TYPE")')
        if not isinstance(why, str) or not why.strip():
            raise ConfigError(f"{path}: {where}.why: say what the app does wrong")
        if keys == ["*"]:
            keys = sorted(routes)
        if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
            raise ConfigError(f'{path}: {where}.routes: a list of route keys, or ["*"]')
        unknown = sorted(set(keys) - set(routes))
        if unknown:
            raise ConfigError(f"{path}: {where}.routes: unknown route(s) {', '.join(unknown)}")
        status = _statuses(path, f"{where}.status", entry.get("status"))
        found.append(OutageDefect(link, toxic, tuple(keys), status, why.strip()))
    return tuple(found)


def _audit_rules(path: Path, raw: object) -> AuditRules | None:
    """[audit] of a profile file, checked: a typo must not become an audit of nothing."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: [audit] must be a table")
    checks = raw.get("checks")
    if checks not in AUDIT_CHECKS:
        raise ConfigError(
            f"{path}: audit.checks {checks!r}: expected {' or '.join(map(repr, AUDIT_CHECKS))}"
        )
    rules = []
    for i, rule in enumerate(raw.get("durable", [])):
        where = f"{path}: audit.durable[{i}]"
        if not isinstance(rule, dict):
            raise ConfigError(f"{where} must be a table")
        missing = [k for k in ("request", "field", "table", "column") if not rule.get(k)]
        if missing:
            raise ConfigError(f"{where} lacks {', '.join(missing)}")
        method, _, template = str(rule["request"]).partition(" ")
        if method not in {"GET", *WRITE_METHODS} or not template.startswith("/"):
            raise ConfigError(f'{where}.request "{rule["request"]}": expected "METHOD /path"')
        for key in ("table", "column"):
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(rule[key])):
                raise ConfigError(f"{where}.{key} {rule[key]!r} is not a plain SQL name")
        rules.append(
            DurableWrite(
                str(rule["request"]),
                str(rule["field"]),
                str(rule["table"]),
                str(rule["column"]),
                bool(rule.get("absent", False)),
            )
        )
    if checks == "tables" and not rules:
        raise ConfigError(f"{path}: audit.checks = 'tables' needs [[audit.durable]] rules")
    not_durable = tuple(map(str, raw.get("not_durable", [])))
    told = raw.get("not_durable_id", {})
    if not isinstance(told, dict) or not set(told) <= set(not_durable):
        raise ConfigError(
            f"{path}: audit.not_durable_id maps requests of not_durable to an answer field"
        )
    ids = {str(k): str(v) for k, v in told.items()}
    publications = _publications(path, raw.get("publications"))
    return AuditRules(str(checks), tuple(rules), not_durable, ids, publications)


def _publications(path: Path, raw: object) -> Publications | None:
    if raw is None:
        return None
    where = f"{path}: audit.publications"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a table")
    missing = [k for k in ("request", "vod_field", "marker") if not isinstance(raw.get(k), str)]
    if missing or not raw["marker"]:
        raise ConfigError(f"{where} needs request, vod_field and a non-empty marker")
    if "{id}" not in raw["request"]:
        raise ConfigError(f'{where}.request "{raw["request"]}": its path needs {{id}}')
    return Publications(str(raw["request"]), str(raw["vod_field"]), str(raw["marker"]))


def ledger_fields(routes: dict[str, Route], audit: AuditRules | None) -> dict[str, tuple[str, ...]]:
    """For the `tables` audit: per route key, the answer fields its acknowledgement notes."""
    if audit is None or audit.checks != "tables":
        return {}
    result: dict[str, tuple[str, ...]] = {}
    for key, route in routes.items():
        request = f"{route.method} {route.template}"
        fields = [r.field for r in audit.durable if r.request == request]
        if told := audit.not_durable_id.get(request):
            fields.append(told)
        if fields or request in audit.not_durable:
            result[key] = tuple(dict.fromkeys(fields))
    return result

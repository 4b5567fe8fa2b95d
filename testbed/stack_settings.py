"""Settings of the reference stack: config/stack.toml, then CLI flags, then the environment.

DATABASE_URL / REDIS_URL / TOXIPROXY_URL name servers that already run; the stack then
starts none of its own for that part and routes the app through proxies to them.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from testbed.hosted.spec import REFERENCE, HostedApp, known_apps, load_app
from testbed.ports import free_ports
from testbed.processes import StackError

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO_ROOT / "config" / "stack.toml"
DEFAULT_PROXIES = REPO_ROOT / "config" / "proxies.json"

PORT_NAMES = ("api", "fault_api", "postgres", "redis", "cablecast")
PROXY_NAMES = ("postgres", "redis", "cablecast")
REGRESSIONS = ("slow-list", "no-cache")


def _default_timeouts() -> dict[str, float]:
    return {"postgres": 30.0, "redis": 15.0, "faults": 20.0, "cablecast": 20.0, "api": 45.0}


@dataclass
class StackSettings:
    """Where every part listens and where the stack keeps its state and logs."""

    host: str = "127.0.0.1"
    state_dir: Path = REPO_ROOT / ".stack"
    ports: dict[str, int] = field(default_factory=dict)
    proxy_ports: dict[str, int] = field(default_factory=dict)
    proxies_file: Path = DEFAULT_PROXIES
    database_name: str = "archivist"
    postgres_settings: dict[str, str] = field(default_factory=dict)
    workers: int = 1
    # seconds each part may take to become healthy; the worker shares the api's bound
    timeouts: dict[str, float] = field(default_factory=_default_timeouts)
    # existing servers to use instead of starting our own (None: start ours)
    database_url: str | None = None
    redis_url: str | None = None
    toxiproxy_url: str | None = None
    # extra environment of the app processes (ARCHIVIST_REGRESSION, ARCHIVIST_CONFIG, ...)
    app_env: dict[str, str] = field(default_factory=dict)
    # the ports were picked free: a start that loses one to a race may pick again
    free_ports: bool = False
    # which Archivist runs: REFERENCE (testbed/api) or a config/apps/NAME.toml hosting a
    # real checkout found at app_src
    app: str = REFERENCE
    app_src: Path | None = None
    # the redis proxy listens where the hosted app hard-wires Redis (config/apps [redis]
    # proxy_port); False: on its own port, and something else serves that address (the
    # paired gate of two app versions, one Redis there for both apps' rate-limit counters)
    pin_app_redis: bool = True

    def __post_init__(self) -> None:
        # Accept plain strings from callers; everything inside works with Paths.
        self.state_dir = Path(self.state_dir)
        self.proxies_file = Path(self.proxies_file)
        if self.app_src is not None:
            self.app_src = Path(self.app_src).expanduser().resolve()

    def hosted_app(self) -> HostedApp | None:
        """The hosting spec of a real checkout, or None for the reference API."""
        return None if self.app == REFERENCE else load_app(REPO_ROOT, self.app)

    @classmethod
    def from_config(
        cls,
        path: Path | str = DEFAULT_CONFIG,
        free_ports: bool = False,
        environ: dict[str, str] | None = None,
        **overrides: Any,
    ) -> StackSettings:
        """Read `path`, apply keyword `overrides` (field names), honour the environment.

        `free_ports=True` replaces every configured port by one the OS says is free, so
        several stacks (tests, CI jobs) can run side by side.
        """
        settings = _parse(Path(path))
        env = os.environ if environ is None else environ
        settings.database_url = env.get("DATABASE_URL") or None
        settings.redis_url = env.get("REDIS_URL") or None
        settings.toxiproxy_url = env.get("TOXIPROXY_URL") or None
        if free_ports:
            settings = settings.with_free_ports()
        try:
            settings = dataclasses.replace(settings, **overrides)
        except TypeError as exc:
            raise StackError(f"unknown stack setting: {exc}") from None
        try:
            settings.validate()
        except StackError as exc:
            raise StackError(f"{path}: {exc}") from None
        return settings

    @classmethod
    def as_written(cls, path: Path | str = DEFAULT_CONFIG) -> StackSettings:
        """`path` as written, not yet validated: which app it names, before a caller adds
        the checkout that app needs (from its own flags or the environment)."""
        return _parse(Path(path))

    def with_free_ports(self) -> StackSettings:
        picked = iter(free_ports(self.host, len(PORT_NAMES) + len(PROXY_NAMES)))
        return dataclasses.replace(
            self,
            ports={name: next(picked) for name in PORT_NAMES},
            proxy_ports={name: next(picked) for name in PROXY_NAMES},
            free_ports=True,
        )

    def validate(self) -> None:
        if self.host not in ("127.0.0.1", "localhost"):
            raise StackError(f"host {self.host!r}: the stack serves only 127.0.0.1")
        for table, names in (("ports", PORT_NAMES), ("proxy_ports", PROXY_NAMES)):
            values = getattr(self, table)
            missing = [name for name in names if name not in values]
            if missing:
                raise StackError(f"[{table}] lacks {', '.join(missing)}")
            for name, port in values.items():
                if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
                    raise StackError(f"[{table}] {name} = {port!r}: must be a port 1..65535")
        if self.app != REFERENCE:
            hosted = load_app(REPO_ROOT, self.app)  # unknown app: a clear error
            if self.app_src is None:
                raise StackError(f"app = {self.app!r} needs app_src (--app-src PATH): its checkout")
            hosted.check_checkout(self.app_src)
        elif self.app_src is not None:
            raise StackError(
                f"app_src {self.app_src} given for the reference app; pick one with --app "
                f"({', '.join(known_apps(REPO_ROOT)[1:])})"
            )
        if not isinstance(self.workers, int) or not 0 <= self.workers <= 16:
            raise StackError(f"workers = {self.workers!r}: must be 0..16")
        regression = self.app_env.get("ARCHIVIST_REGRESSION")
        if regression and regression not in REGRESSIONS:
            raise StackError(
                f"ARCHIVIST_REGRESSION={regression!r}: known regressions are "
                + ", ".join(REGRESSIONS)
            )
        for name, url in (("DATABASE_URL", self.database_url), ("REDIS_URL", self.redis_url)):
            if url is not None:
                check_service_url(name, url)

    def wanted_ports(self) -> dict[str, int]:
        """Ports this stack will listen on, named by what wants them (for the pre-check)."""
        wanted = {name: port for name, port in self.ports.items() if name in PORT_NAMES}
        if self.database_url:
            del wanted["postgres"]
        if self.redis_url:
            del wanted["redis"]
        if self.toxiproxy_url:
            del wanted["fault_api"]
        else:
            wanted |= {f"{name} proxy": port for name, port in self.proxy_ports.items()}
        return wanted


def check_service_url(env_name: str, url: str) -> None:
    scheme = {"DATABASE_URL": ("postgresql", "postgres"), "REDIS_URL": ("redis",)}[env_name]
    parts = urlsplit(url)
    try:
        valid_port = parts.port is None or parts.port > 0
    except ValueError:
        valid_port = False
    if parts.scheme not in scheme or not parts.hostname or not valid_port:
        raise StackError(f"{env_name}={url!r}: expected {scheme[0]}://[user@]host[:port]/...")


def _parse(path: Path) -> StackSettings:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise StackError(f"{path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise StackError(f"{path}: not valid TOML: {exc}") from None
    known = {
        "host", "state_dir", "proxies_file", "database", "workers",
        "ports", "proxy_ports", "postgres", "timeouts", "app", "app_src",
    }  # fmt: skip
    unknown = sorted(set(data) - known)
    if unknown:
        raise StackError(f"{path}: unknown key(s) {', '.join(unknown)}; known: {sorted(known)}")

    def table(name: str) -> dict[str, Any]:
        value = data.get(name, {})
        if not isinstance(value, dict):
            raise StackError(f"{path}: [{name}] must be a table")
        return value

    def relative(value: Any, key: str) -> Path:
        if not isinstance(value, str):
            raise StackError(f"{path}: {key} must be a string path")
        return Path(value) if Path(value).is_absolute() else REPO_ROOT / value

    defaults = StackSettings()
    timeouts = _default_timeouts()
    for name, value in table("timeouts").items():
        if name not in timeouts or not isinstance(value, int | float) or value <= 0:
            raise StackError(
                f"{path}: [timeouts] {name} = {value!r}: "
                f"must be a positive number of seconds for one of {sorted(timeouts)}"
            )
        timeouts[name] = float(value)
    for name in ("ports", "proxy_ports"):
        unknown = sorted(set(table(name)) - set(PORT_NAMES if name == "ports" else PROXY_NAMES))
        if unknown:
            raise StackError(f"{path}: [{name}] unknown name(s) {', '.join(unknown)}")
    return StackSettings(
        host=str(data.get("host", defaults.host)),
        state_dir=relative(data.get("state_dir", ".stack"), "state_dir"),
        ports=dict(table("ports")),
        proxy_ports=dict(table("proxy_ports")),
        proxies_file=relative(data.get("proxies_file", "config/proxies.json"), "proxies_file"),
        database_name=str(data.get("database", defaults.database_name)),
        postgres_settings={k: str(v) for k, v in table("postgres").items()},
        workers=data.get("workers", defaults.workers),
        timeouts=timeouts,
        app=str(data.get("app", REFERENCE)),
        app_src=relative(data["app_src"], "app_src") if data.get("app_src") else None,
    )

"""Settings of the API, the worker and the simulator: config/archivist.toml plus env.

One frozen dataclass per TOML table, so a typo in the file fails at start with the file
and key named, instead of a KeyError deep inside a request.
"""

from __future__ import annotations

import logging
import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO_ROOT / "config" / "archivist.toml"
REGRESSIONS = ("slow-list", "no-cache")


class ConfigError(Exception):
    """The configuration or environment is unusable; the message says what to fix."""


@dataclass(frozen=True)
class ApiSettings:
    max_body_bytes: int
    request_timeout_s: float
    health_check_timeout_s: float


@dataclass(frozen=True)
class DatabaseSettings:
    pool_min_size: int
    pool_max_size: int
    pool_timeout_s: float
    connect_timeout_s: int
    statement_timeout_ms: int
    migrate_deadline_s: float


@dataclass(frozen=True)
class RedisSettings:
    socket_timeout_s: float
    socket_connect_timeout_s: float
    max_connections: int


@dataclass(frozen=True)
class CablecastSettings:
    timeout_s: float
    username: str
    password: str
    location_id: int
    vod_configuration_id: int


@dataclass(frozen=True)
class CacheSettings:
    vod_ttl_s: int
    shows_ttl_s: int


@dataclass(frozen=True)
class AuthSettings:
    access_ttl_s: int
    refresh_ttl_s: int
    max_failed_logins: int
    lockout_window_s: int
    scrypt_n: int


@dataclass(frozen=True)
class UsersSettings:
    count: int
    name_pattern: str
    password: str
    role: str

    def names(self) -> list[str]:
        return [self.name_pattern.format(n=n) for n in range(1, self.count + 1)]


@dataclass(frozen=True)
class QueueSettings:
    stream: str
    group: str
    maxlen: int
    claim_idle_ms: int
    block_ms: int


@dataclass(frozen=True)
class WorkerSettings:
    concurrency: int
    stage_min_ms: int
    stage_max_ms: int
    publish_attempts: int
    backoff_initial_s: float
    backoff_max_s: float
    max_job_deliveries: int
    outage_backoff_max_s: float


@dataclass(frozen=True)
class SimulatorSettings:
    queued_s: float
    processing_s: float
    version: str


T = TypeVar("T")


def _section(cls: type[T], data: dict[str, Any], name: str, source: Path) -> T:
    table = data.get(name)
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: missing table [{name}]")
    known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise ConfigError(f"{source}: [{name}] has unknown keys {unknown}; known: {sorted(known)}")
    missing = sorted(set(known) - set(table))
    if missing:
        raise ConfigError(f"{source}: [{name}] is missing {missing}")
    for key, value in table.items():
        expected = known[key].type
        ok = {
            "int": isinstance(value, int) and not isinstance(value, bool),
            "float": isinstance(value, int | float) and not isinstance(value, bool),
            "str": isinstance(value, str),
        }.get(str(expected), True)
        if not ok:
            raise ConfigError(f"{source}: [{name}].{key} must be {expected}, got {value!r}")
    return cls(**table)


@dataclass(frozen=True)
class AppConfig:
    """Everything in config/archivist.toml."""

    source: Path
    api: ApiSettings
    database: DatabaseSettings
    redis: RedisSettings
    cablecast: CablecastSettings
    cache: CacheSettings
    auth: AuthSettings
    users: UsersSettings
    queue: QueueSettings
    worker: WorkerSettings
    simulator: SimulatorSettings

    @classmethod
    def load(cls, path: Path | None = None) -> AppConfig:
        source = path or Path(os.environ.get("ARCHIVIST_CONFIG") or DEFAULT_CONFIG)
        try:
            data = tomllib.loads(source.read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read config {source}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{source}: invalid TOML: {exc}") from exc
        return cls(
            source=source,
            api=_section(ApiSettings, data, "api", source),
            database=_section(DatabaseSettings, data, "database", source),
            redis=_section(RedisSettings, data, "redis", source),
            cablecast=_section(CablecastSettings, data, "cablecast", source),
            cache=_section(CacheSettings, data, "cache", source),
            auth=_section(AuthSettings, data, "auth", source),
            users=_section(UsersSettings, data, "users", source),
            queue=_section(QueueSettings, data, "queue", source),
            worker=_section(WorkerSettings, data, "worker", source),
            simulator=_section(SimulatorSettings, data, "simulator", source),
        )


@dataclass(frozen=True)
class Endpoints:
    """Where the dependencies are, from the environment (through the fault proxies)."""

    database_url: str
    redis_url: str
    cablecast_url: str
    regression: str | None

    @classmethod
    def from_env(cls, need: tuple[str, ...] = ("database", "redis", "cablecast")) -> Endpoints:
        names = {
            "database": "ARCHIVIST_DATABASE_URL",
            "redis": "ARCHIVIST_REDIS_URL",
            "cablecast": "ARCHIVIST_CABLECAST_URL",
        }
        missing = [names[n] for n in need if not os.environ.get(names[n])]
        if missing:
            raise ConfigError(
                "missing environment variable(s) "
                + ", ".join(missing)
                + " (e.g. ARCHIVIST_DATABASE_URL=postgresql://user@127.0.0.1:25432/archivist,"
                " ARCHIVIST_REDIS_URL=redis://127.0.0.1:26379/0,"
                " ARCHIVIST_CABLECAST_URL=http://127.0.0.1:28080/CablecastAPI/v1)"
            )
        regression = os.environ.get("ARCHIVIST_REGRESSION") or None
        if regression is not None and regression not in REGRESSIONS:
            raise ConfigError(
                f"ARCHIVIST_REGRESSION={regression!r} is not a known regression; "
                f"known: {', '.join(REGRESSIONS)} (or unset)"
            )
        return cls(
            database_url=os.environ.get(names["database"], ""),
            redis_url=os.environ.get(names["redis"], ""),
            cablecast_url=os.environ.get(names["cablecast"], "").rstrip("/"),
            regression=regression,
        )


def load_process_settings(log_level: str) -> tuple[AppConfig, Endpoints]:
    """What the API and the worker both need before they serve: config, endpoints, logging.

    Raises ConfigError (the callers exit 2 with its message) before logging is set up, so a
    bad environment prints one clear line and nothing else.
    """
    config = AppConfig.load()
    endpoints = Endpoints.from_env()
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return config, endpoints

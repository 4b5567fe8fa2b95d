"""How each app process of the stack is defined: its command, working dir and environment.

Two kinds of app: the reference apps (testbed.api and testbed.worker) and a hosted real
app (testbed.hosted). Either way every dependency URL goes through its fault proxy. The
orchestrator (testbed.stack) turns these definitions into processes it starts and watches.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from testbed.api.settings import AppConfig, ConfigError
from testbed.hosted import launch as hosted_launch
from testbed.hosted.spec import HostedApp
from testbed.hosted.venv import ensure_venv
from testbed.processes import StackError
from testbed.stack_proxies import with_address
from testbed.stack_settings import REPO_ROOT, StackSettings

CABLECAST_BASE = "/CablecastAPI/v1"


@dataclass(frozen=True)
class AppPart:
    """One app process to start: the API (probed over HTTP) or a worker (by its Redis link)."""

    name: str
    argv: list[str]
    env: dict[str, str]
    worker: bool
    cwd: Path = REPO_ROOT


@dataclass(frozen=True)
class AppParts:
    """The app processes of a stack and the environment they share (Stack.app_env)."""

    env: dict[str, str]
    parts: list[AppPart]


def reference_apps(settings: StackSettings, database_url: str, redis_url: str) -> AppParts:
    """The reference API and its workers; every dependency URL goes through its proxy."""
    s = settings
    proxy = s.proxy_ports
    env = dict(os.environ) | {
        "ARCHIVIST_DATABASE_URL": with_address(database_url, s.host, proxy["postgres"]),
        "ARCHIVIST_REDIS_URL": with_address(redis_url, s.host, proxy["redis"]),
        "ARCHIVIST_CABLECAST_URL": f"http://{s.host}:{proxy['cablecast']}{CABLECAST_BASE}",
    }
    env |= s.app_env
    api_argv = [sys.executable, "-m", "testbed.api", "--host", s.host]
    api_argv += ["--port", str(s.ports["api"])]
    parts = [AppPart("api", api_argv, env, worker=False)]
    for n in range(1, s.workers + 1):
        name = "worker" if n == 1 else f"worker-{n}"
        # Unique per stack, so stacks sharing one Redis (REDIS_URL) do not collide.
        consumer = f"{name}@{s.host}:{s.ports['api']}"
        worker_env = env | {"ARCHIVIST_WORKER_NAME": consumer}
        parts.append(AppPart(name, [sys.executable, "-m", "testbed.worker"], worker_env, True))
    return AppParts(env, parts)


def pin_hosted_ports(settings: StackSettings, hosted: HostedApp | None) -> StackSettings:
    """The hosted app's fixed Redis address (its limiter ignores the environment)."""
    port = hosted.redis_proxy_port if hosted is not None else None
    if port and settings.pin_app_redis:
        return dataclasses.replace(settings, proxy_ports=settings.proxy_ports | {"redis": port})
    return settings


def hosted_venv(settings: StackSettings, hosted: HostedApp | None) -> Path | None:
    """Build (once) the hosted app's venv before anything starts: it takes minutes."""
    if hosted is None:
        return None
    assert settings.app_src is not None  # validated with the settings
    return ensure_venv(hosted, settings.app_src, REPO_ROOT, say=_say)


def prepare_hosted(
    settings: StackSettings,
    hosted: HostedApp,
    venv: Path,
    state_dir: Path,
    database_url: str,
    redis_url: str,
) -> hosted_launch.Launch:
    """The real app's commands and env, its dependencies reached through the proxies."""
    s = settings
    assert s.app_src is not None
    proxy = s.proxy_ports
    cablecast_root = f"http://{s.host}:{proxy['cablecast']}"
    try:
        creds = AppConfig.load().cablecast
    except ConfigError as exc:
        raise StackError(str(exc)) from None
    values = {
        "host": s.host,
        "port": str(s.ports["api"]),
        "database_url": with_address(database_url, s.host, proxy["postgres"]),
        "redis_url": with_address(redis_url, s.host, proxy["redis"]),
        "redis_host": s.host,
        "redis_port": str(proxy["redis"]),
        "cablecast_url": cablecast_root + CABLECAST_BASE,
        "cablecast_root": cablecast_root,
        "cablecast_user": creds.username,
        "cablecast_password": creds.password,
        "cablecast_location": str(creds.location_id),
    }
    return hosted_launch.prepare(hosted, s.app_src, venv, REPO_ROOT, state_dir, values)


def hosted_apps(launch: hosted_launch.Launch, workers: int) -> AppParts:
    """The real app's web process and, if it has one and workers are wanted, its worker."""
    parts = [AppPart("api", launch.web, launch.env, worker=False, cwd=launch.cwd)]
    if launch.worker and workers > 0:
        parts.append(AppPart("worker", launch.worker, launch.env, worker=True, cwd=launch.cwd))
    return AppParts(launch.env, parts)


def _say(text: str) -> None:
    with contextlib.suppress(OSError):  # a closed stdout must not stop a start
        print(text, flush=True)

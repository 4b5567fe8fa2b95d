"""config/apps/NAME.toml: how to host one real Archivist checkout, read and checked up front.

Everything about the real app that is not its code is data here, so hosting another
version (or another app) is an edit of that file, not of the stack.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testbed.hosted.fixtures import Fixture, parse_fixtures
from testbed.processes import StackError

REFERENCE = "reference"  # the toolkit's own Archivist API (testbed/api), no checkout


@dataclass(frozen=True)
class HostedApp:
    """One hosting spec (see config/apps/archivist-flask.toml for what each field means)."""

    name: str
    source: Path
    title: str
    routes: str
    expect: tuple[str, ...]
    venv_cache: str
    requirements: tuple[str, ...]
    extra: tuple[str, ...]
    leave_out: tuple[str, ...]
    constraints: tuple[str, ...]
    standins_path: str
    standins: tuple[str, ...]
    tls: bool
    health: str
    ok_status: tuple[int, ...]
    probe_headers: dict[str, str]  # sent with the stack's health probe (behind a TLS proxy)
    web_argv: tuple[str, ...]
    worker_argv: tuple[str, ...]
    redis_proxy_port: int | None
    mounts: dict[str, str]
    mount_dirs: tuple[str, ...]
    env: dict[str, str]
    # Locust flags every experiment against this app gets unless it sets them itself
    load_options: dict[str, Any] = field(default_factory=dict)
    # The test data its workflows start from, seeded after its schema (testbed/hosted/fixtures.py)
    fixtures: tuple[Fixture, ...] = ()

    def check_checkout(self, src: Path) -> None:
        """A clear error when `src` is not a checkout of this app (before anything starts)."""
        if not src.is_dir():
            raise StackError(f"--app-src {src}: not a directory (a checkout of {self.name})")
        missing = [p for p in self.expect if not (src / p).is_file()]
        if missing:
            raise StackError(
                f"--app-src {src}: not a checkout of {self.name}: lacks {', '.join(missing)}"
            )


def locust_flags(options: dict[str, Any]) -> list[str]:
    """``{"source-addresses": 20, "allow-silent": True}`` as Locust flags: ``--key value``,
    a bare ``--key`` for True, nothing for False (pure; shared by experiments and the gate)."""
    flags: list[str] = []
    for key, value in options.items():
        if value is True:
            flags.append(f"--{key}")
        elif value is not False:
            flags += [f"--{key}", str(value)]
    return flags


def apps_dir(root: Path) -> Path:
    return root / "config" / "apps"


def known_apps(root: Path) -> list[str]:
    """REFERENCE plus every config/apps/*.toml, for CLI choices and error messages."""
    return [REFERENCE, *sorted(p.stem for p in apps_dir(root).glob("*.toml"))]


def load_app(root: Path, name: str) -> HostedApp:
    """config/apps/NAME.toml, or a hosting spec's own path (NAME.toml anywhere: a variant)."""
    path = Path(name) if name.endswith(".toml") else apps_dir(root) / f"{name}.toml"
    if not path.is_file():
        raise StackError(f"--app {name}: unknown app; known: {', '.join(known_apps(root))}")
    name = path.stem
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise StackError(f"{path}: not valid TOML: {exc}") from None
    return _parse(name, path, data)


def _parse(name: str, path: Path, data: dict[str, Any]) -> HostedApp:
    def table(key: str) -> dict[str, Any]:
        value = data.get(key, {})
        if not isinstance(value, dict):
            raise StackError(f"{path}: [{key}] must be a table")
        return value

    def strings(value: Any, where: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise StackError(f"{path}: {where} must be a list of strings")
        return tuple(value)

    venv, standins, web = table("venv"), table("standins"), table("web")
    load_options = dict(table("load").get("options", {}))
    for key, value in load_options.items():
        if not isinstance(value, str | int | float | bool):
            raise StackError(f"{path}: [load] options.{key} must be a string, number or boolean")
    worker, redis, env = table("worker"), table("redis"), table("env")
    mounts = dict(table("mounts"))
    mount_dirs = strings(mounts.pop("dirs", []), "[mounts] dirs")
    for target, folder in mounts.items():
        if not target.startswith("/") or not isinstance(folder, str):
            raise StackError(f"{path}: [mounts] {target!r} = {folder!r}: want '/abs' = 'folder'")
    if not all(isinstance(v, str) for v in env.values()):
        raise StackError(f"{path}: [env] values must be strings")
    port = redis.get("proxy_port")
    if port is not None and (not isinstance(port, int) or not 0 < port < 65536):
        raise StackError(f"{path}: [redis] proxy_port = {port!r}: must be a port")
    ok = web.get("ok_status", [200])
    if not isinstance(ok, list) or not all(isinstance(s, int) for s in ok):
        raise StackError(f"{path}: [web] ok_status must be a list of status codes")
    web_argv = strings(web.get("argv"), "[web] argv")
    probe = web.get("probe_headers", {})
    if not isinstance(probe, dict) or not all(isinstance(v, str) for v in probe.values()):
        raise StackError(f"{path}: [web] probe_headers must map header names to strings")
    worker_argv = strings(worker.get("argv", []), "[worker] argv")
    if not web_argv:
        raise StackError(f"{path}: [web] argv is empty")
    app = HostedApp(
        name=name,
        source=path,
        title=str(data.get("title", name)),
        routes=str(data.get("routes", name)),
        expect=strings(data.get("expect", []), "expect"),
        venv_cache=str(venv.get("cache", ".stack/venvs")),
        requirements=strings(venv.get("requirements", []), "[venv] requirements"),
        extra=strings(venv.get("extra", []), "[venv] extra"),
        leave_out=strings(venv.get("leave_out", []), "[venv] leave_out"),
        constraints=strings(venv.get("constraints", []), "[venv] constraints"),
        standins_path=str(standins.get("path", "")),
        standins=strings(standins.get("modules", []), "[standins] modules"),
        tls=bool(web.get("tls", False)),
        health=str(web.get("health", "/api/health")),
        ok_status=tuple(ok),
        probe_headers={str(k): v for k, v in probe.items()},
        web_argv=web_argv,
        worker_argv=worker_argv,
        redis_proxy_port=port,
        mounts={str(k): str(v) for k, v in mounts.items()},
        mount_dirs=mount_dirs,
        env={str(k): str(v) for k, v in env.items()},
        load_options=load_options,
        fixtures=parse_fixtures(path, data.get("fixtures")),
    )
    unknown = sorted(_placeholders(app) - PLACEHOLDERS)
    if unknown:
        raise StackError(
            f"{path}: unknown placeholder(s) {', '.join('{' + u + '}' for u in unknown)}; "
            f"known: {', '.join(sorted(PLACEHOLDERS))}"
        )
    return app


# What the stack fills in (testbed/hosted/launch.py: values()).
PLACEHOLDERS = {
    "host", "port", "state", "tls_cert", "tls_key", "database_url", "redis_url",
    "redis_host", "redis_port", "cablecast_url", "cablecast_root", "cablecast_user",
    "cablecast_password", "cablecast_location",
}  # fmt: skip

_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _placeholders(app: HostedApp) -> set[str]:
    texts = [*app.web_argv, *app.worker_argv, *app.env.values()]
    return {m for text in texts for m in _PLACEHOLDER.findall(text)}


def render(template: str, values: dict[str, str]) -> str:
    """`template` with each {name} replaced (names checked at load: no KeyError here)."""
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)

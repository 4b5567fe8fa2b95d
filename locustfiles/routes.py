"""Route/auth profiles (config/routes/*.toml): which Archivist routes exist, and how to log in.

The workflows name routes by key ("get_vod"); a profile maps each key to "METHOD /path".
The API contract is the default profile; another deployment (the Flask Archivist of
today) gets its own file, never an edit of the workflows. No Locust in here, so the
profiles are testable on their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from locustfiles.tomlconfig import CONFIG_DIR, ConfigError, load_toml

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
        mode = auth.get("mode", "bearer")
        if mode not in ("bearer", "csrf", "none"):
            raise ConfigError(f"{path}: auth.mode {mode!r}: expected bearer, csrf or none")
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
        )
        needed = {"bearer": ["login"], "csrf": [profile.csrf_route], "none": []}[mode]
        for key in [*needed, profile.health_route]:
            if key not in routes:
                raise ConfigError(f"{path}: auth/health need route {key!r} in [routes]")
        return profile


class MissingRoute(LookupError):
    """The deployment lacks a route a task needs (the API client skips the task)."""

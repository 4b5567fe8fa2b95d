"""The workload's settings: its pacing and limits, the seeded accounts, the route profile.

- ``config/workload.toml``: pacing and limits of the workflows, and how many seeded users
  go to the lock-out and wrong-password pools;
- the seeded users of the stack (``config/archivist.toml``, or ``$ARCHIVIST_CONFIG``);
- the route/auth profile a run uses (``--routes``, a name in ``config/routes/``).

Each is read once per process and shared by every user.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from locust.env import Environment

from workload.routes import Profile
from workload.tomlconfig import CONFIG_DIR, ConfigError, load_toml

WORKLOAD_TOML = CONFIG_DIR / "workload.toml"


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


# One count for the round-robin over the pool and the users' random seeds (workload.users).
user_numbers = itertools.count()


def next_regular_user() -> str:
    """Round-robin over the regular pool, offset by pid so processes spread out."""
    pool = workload().accounts.regular
    return pool[(next(user_numbers) + os.getpid()) % len(pool)]


_profiles: dict[str, Profile] = {}


def profile_of(environment: Environment) -> Profile:
    name = getattr(environment.parsed_options, "routes", None) or "contract"
    if name not in _profiles:
        _profiles[name] = Profile.load(name)
    return _profiles[name]

"""Which Archivist a started stack hosts, and from which checkout: one rule for every command.

`python -m experiments run` (and its old name `python -m faults run`), `python -m analysis
gate --start-stack` and `python -m analysis baseline record` choose their target here:

- the app: `--app`, else the experiment's `[stack] app` (experiments only), else the
  stack TOML's `app` (config/stack.toml, or --stack-config);
- its checkout, for a real app (the reference app has none): `--app-src`, else the
  experiment's `[stack] app_src`, else `$ARCHIVIST_SRC`, else the stack TOML's `app_src`
  when that TOML names the same app (its checkout is that app's).

Everything is checked before anything starts (the app is known, the checkout is a folder
and is that app's, the stack TOML is valid), so a wrong choice is one line, not a stack
that failed halfway.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from testbed.hosted.spec import REFERENCE, known_apps
from testbed.processes import StackError
from testbed.stack_settings import REPO_ROOT, StackSettings


class AppChoiceError(StackError):
    """The app or its checkout cannot be hosted; the message says which and why."""


class Declared(Protocol):
    """What an experiment's `[stack]` table names (None: it names nothing)."""

    @property
    def app(self) -> str | None: ...

    @property
    def app_src(self) -> Path | None: ...


@dataclass(frozen=True)
class AppChoice:
    """The app the stack hosts (REFERENCE or a config/apps/NAME.toml) and its checkout."""

    app: str
    app_src: Path | None = None


def choose_app(
    app: str | None,
    app_src: str | Path | None,
    stack_config: Path,
    declared: Declared | None = None,
) -> AppChoice:
    """The target of a command: its `--app` and `--app-src` flags, then `declared` (an
    experiment's [stack]; None for a command without one), then the environment and
    `stack_config`, in the order of the module doc. AppChoiceError says what is wrong."""
    written: StackSettings | None = None

    def as_written() -> StackSettings:
        nonlocal written
        if written is None:
            try:
                written = StackSettings.as_written(stack_config)
            except StackError as exc:  # unreadable, not TOML, unknown keys
                raise AppChoiceError(str(exc)) from None
        return written

    name = app or (declared.app if declared is not None else None)
    where = "--app" if app or declared is None else "[stack] app"
    if name is None:
        name, where = as_written().app, f"{stack_config}: app"
    if name == REFERENCE:
        if app_src:
            also = " (or [stack] app in the experiment)" if declared is not None else ""
            raise AppChoiceError(f"--app-src needs --app NAME{also}")
        return _checked(stack_config, name, None)
    if name not in known_apps(REPO_ROOT):
        known = ", ".join(known_apps(REPO_ROOT))
        raise AppChoiceError(f"{where} {name!r}: unknown app; known: {known}")
    given = app_src or (declared.app_src if declared is not None else None)
    given = given or os.environ.get("ARCHIVIST_SRC") or None
    if given is not None:
        src = Path(given).expanduser()
        if not src.is_dir():
            raise AppChoiceError(f"app {name}: checkout {src} is not a folder")
        return _checked(stack_config, name, src.resolve())
    if as_written().app == name:  # the stack TOML's app_src (or its one-line refusal)
        return _checked(stack_config, name, None)
    raise AppChoiceError(f"app {name} needs its checkout: --app-src PATH or ARCHIVIST_SRC=PATH")


def _checked(stack_config: Path, app: str, app_src: Path | None) -> AppChoice:
    """The choice as the started stack will see it (the stack TOML with `app` and, when
    given, `app_src` put in), validated now: a stack TOML that names another checkout or
    that the stack would refuse is one line before anything starts."""
    chosen: dict[str, Any] = {"app": app}
    if app_src is not None:
        chosen["app_src"] = app_src
    try:
        settings = StackSettings.from_config(stack_config, free_ports=True, **chosen)
    except StackError as exc:
        raise AppChoiceError(str(exc)) from None
    return AppChoice(settings.app, settings.app_src)

"""The handlers the Flask profile names (config/routes/archivist-flask.toml,
[findings.handlers]) are the functions that serve its routes in the real app's source:
a finding quotes a line only when its route's handler wrote it, so a wrong name would
hide every line of that route. Read from the checkout's text, the app is not imported."""

from __future__ import annotations

import re
from pathlib import Path

from analysis.findings_rules import load_rules
from tests.conftest import archivist_src
from workload.routes import Profile

_ROUTE = re.compile(r"""^\s*@\w+\.route\(\s*['"]([^'"]+)['"](?:.*methods=\[([^\]]*)\])?""")
_DEF = re.compile(r"^\s*def (\w+)\(")


def served(src: Path, module: str) -> dict[str, tuple[str, set[str]]]:
    """function -> (the path its route decorator names, with {id}, and its methods)."""
    base = src / module.replace(".", "/")
    file = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
    found: dict[str, tuple[str, set[str]]] = {}
    pending: tuple[str, set[str]] | None = None
    for line in file.read_text().splitlines():
        if m := _ROUTE.match(line):
            methods = set(re.findall(r"\w+", m.group(2) or "")) or {"GET"}
            pending = (re.sub(r"<[^>]+>", "{id}", m.group(1)), methods)
        elif (d := _DEF.match(line)) and pending is not None:
            found[d.group(1)] = pending
            pending = None
    return found


def test_every_handler_of_the_flask_profile_serves_its_route() -> None:
    src = archivist_src()
    profile = Profile.load("archivist-flask")
    rules = load_rules("archivist-flask")
    assert len(rules.handlers) == len(profile.routes)  # every route has its handler named
    for route in profile.routes.values():
        for handler in rules.handlers[(route.method, route.name)]:
            module, _, function = handler.rpartition(":")
            path, methods = served(src, module).get(function, ("", set()))
            assert path, f"{handler}: no route-decorated function {function} in {module}"
            assert route.template.endswith(path), f"{handler} serves {path}, not {route.template}"
            assert route.method in methods, f"{handler} serves {methods}, not {route.method}"

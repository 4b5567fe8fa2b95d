"""The hosted app's own venv, made from its checkout's requirement files minus ML/GPU packages.

It is built once per distinct set of requirements (a hash names its folder) in a cache
shared by every stack, since a build takes minutes and tests use throwaway state dirs.
What was left out is printed at every start, so nobody mistakes the venv for the app's
full one.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from testbed.hosted.spec import HostedApp
from testbed.processes import StackError

MARKER = ".toolkit-venv-ok"  # written last: a folder without it is a build that did not finish
PIP_TIMEOUT_S = 1800.0


@dataclass(frozen=True)
class Selection:
    """The requirement lines to install, and the ones left out (as written in the files)."""

    keep: tuple[str, ...]
    left_out: tuple[str, ...]


def select(lines: list[str], leave_out: tuple[str, ...]) -> Selection:
    """Split requirement lines into installed and left out (by canonical project name).

    Comments, blank lines and pip options (-r, -c, --index-url, ...) are dropped: the
    caller reads each listed file itself, so nothing is pulled in behind its back.
    """
    unwanted = {canonicalize_name(name) for name in leave_out}
    keep: list[str] = []
    dropped: list[str] = []
    for raw in lines:
        line = raw.split(" #", 1)[0].split("\t#", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        try:
            requirement = Requirement(line)
        except InvalidRequirement as exc:
            raise StackError(f"requirement {line!r}: cannot parse it: {exc}") from None
        target = dropped if canonicalize_name(requirement.name) in unwanted else keep
        if line not in target:
            target.append(line)
    return Selection(tuple(keep), tuple(dropped))


def selection_for(app: HostedApp, src: Path) -> Selection:
    lines: list[str] = []
    for name in app.requirements:
        path = src / name
        try:
            lines += path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise StackError(f"{path}: cannot read its requirements: {exc.strerror}") from None
    lines += list(app.extra)
    return select(lines, app.leave_out)


def venv_dir(app: HostedApp, selection: Selection, root: Path) -> Path:
    cache = Path(app.venv_cache)
    cache = cache if cache.is_absolute() else root / cache
    key = "\n".join([sys.version, *selection.keep, "--", *app.constraints])
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return cache / f"{app.name}-{digest}"


def ensure_venv(app: HostedApp, src: Path, root: Path, say: Callable[[str], None] = print) -> Path:
    """The venv for `src`'s requirements, built now if the cache has none; returns its path."""
    selection = selection_for(app, src)
    path = venv_dir(app, selection, root)
    say(
        f"{app.name}: venv {path} from {', '.join(app.requirements)} + {', '.join(app.extra)}; "
        f"left out: {', '.join(selection.left_out) or 'nothing'}"
    )
    if (path / MARKER).is_file():
        return path
    say(f"{app.name}: building that venv (once; a few minutes) ...")
    path.mkdir(parents=True, exist_ok=True)
    (path / "requirements.txt").write_text("\n".join(selection.keep) + "\n", encoding="utf-8")
    (path / "constraints.txt").write_text("\n".join(app.constraints) + "\n", encoding="utf-8")
    log = path / "build.log"
    steps = [
        [sys.executable, "-m", "venv", str(path)],
        [str(path / "bin" / "python"), "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
        [
            str(path / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "-r",
            str(path / "requirements.txt"),
            "-c",
            str(path / "constraints.txt"),
        ],
    ]
    with log.open("ab") as out:
        for argv in steps:
            out.write(f"\n$ {' '.join(argv)}\n".encode())
            out.flush()
            try:
                code = subprocess.run(
                    argv, stdout=out, stderr=subprocess.STDOUT, timeout=PIP_TIMEOUT_S
                ).returncode
            except subprocess.TimeoutExpired:
                code = -1
            if code != 0:
                raise StackError(
                    f"{app.name}: building its venv failed ({' '.join(argv[:4])} ...); see {log}"
                )
    (path / MARKER).write_text("ok\n", encoding="utf-8")
    return path

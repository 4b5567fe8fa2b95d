"""Seeded copies of a real app's checkout: known defects fixed, or defects planted.

A check holds only once it has been seen to fail on the defect it is for, and a code path
behind a known defect can only be tested with that defect out of the way. Both need the
app's code changed, and the user's checkout must never be (STYLE.md 8): so the changes are
data (config/seeds/APP.toml), applied to a copy in a folder of the caller's.

    python -m testbed.hosted.seeding --app archivist-flask --list
    python -m testbed.hosted.seeding --app archivist-flask --app-src SRC --into DIR SEED...
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testbed.stack_settings import REPO_ROOT

SEEDS_DIR = REPO_ROOT / "config" / "seeds"
KINDS = ("fix", "defect")
NOT_COPIED = (".git", "logs", "__pycache__", ".venv", "venv", "node_modules")


class SeedError(Exception):
    """A seed cannot be applied (unknown name, a checkout whose code moved on, bad data);
    the message names the seed, the file and the text."""


@dataclass(frozen=True)
class Edit:
    file: str
    old: str = ""  # replaced by `new`; must occur `count` times
    new: str = ""
    count: int = 1
    prepend: str = ""  # when set: put before the file's text (old/new unused)


@dataclass(frozen=True)
class Seed:
    name: str
    kind: str
    why: str
    edits: tuple[Edit, ...]
    requires: tuple[str, ...] = ()
    # what should catch it (the selftest runs it): "experiment NAME" or "gate"; "" none
    check: str = ""


def _edit(where: str, raw: Any) -> Edit:
    if not isinstance(raw, dict) or not isinstance(raw.get("file"), str):
        raise SeedError(f"{where}: an edit is a table with a 'file'")
    unknown = set(raw) - {"file", "old", "new", "count", "prepend"}
    if unknown:
        raise SeedError(f"{where}: unknown edit key(s) {sorted(unknown)}")
    edit = Edit(**raw)
    if bool(edit.prepend) == bool(edit.old):
        raise SeedError(f"{where} {edit.file}: give either 'old' (with 'new') or 'prepend'")
    if not isinstance(edit.count, int) or edit.count < 1:
        raise SeedError(f"{where} {edit.file}: count must be an integer >= 1")
    return edit


def load_seeds(app: str, seeds_dir: Path = SEEDS_DIR) -> dict[str, Seed]:
    """The catalogue of APP's seeds, by name, checked up front."""
    path = seeds_dir / f"{app}.toml"
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        known = ", ".join(sorted(p.stem for p in seeds_dir.glob("*.toml"))) or "none"
        raise SeedError(f"{path}: no seeds for app {app!r} (known: {known})") from None
    except tomllib.TOMLDecodeError as exc:
        raise SeedError(f"{path}: not valid TOML: {exc}") from None
    seeds: dict[str, Seed] = {}
    for raw in data.get("seed", []):
        name = raw.get("name")
        where = f"{path} seed {name!r}"
        if not isinstance(name, str) or not name or name in seeds:
            raise SeedError(f"{where}: each seed needs a name of its own")
        if raw.get("kind") not in KINDS:
            raise SeedError(f"{where}: kind must be one of {', '.join(KINDS)}")
        edits = tuple(_edit(where, e) for e in raw.get("edits", []))
        if not edits:
            raise SeedError(f"{where}: no edits")
        requires = tuple(raw.get("requires", ()))
        check = str(raw.get("check", ""))
        if check and check != "gate" and not check.startswith("experiment "):
            raise SeedError(f"{where}: check must be 'gate' or 'experiment NAME', not {check!r}")
        why = str(raw.get("why", "")).strip()
        seeds[name] = Seed(name, raw["kind"], why, edits, requires, check)
    for seed in seeds.values():
        for needed in seed.requires:
            if needed not in seeds:
                raise SeedError(f"{path} seed {seed.name!r}: requires unknown {needed!r}")
    return seeds


def in_order(seeds: dict[str, Seed], names: list[str]) -> list[Seed]:
    """The seeds named, each after the ones it requires, each once."""
    out: list[Seed] = []

    def add(name: str, chain: tuple[str, ...]) -> None:
        if name in chain:
            raise SeedError(f"seed {name!r}: requires itself ({' -> '.join((*chain, name))})")
        if name not in seeds:
            known = ", ".join(sorted(seeds)) or "none"
            raise SeedError(f"no seed {name!r} (known: {known})")
        for needed in seeds[name].requires:
            add(needed, (*chain, name))
        if seeds[name] not in out:
            out.append(seeds[name])

    for name in names:
        add(name, ())
    return out


def apply_edit(root: Path, seed: Seed, edit: Edit) -> None:
    path = root / edit.file
    if not path.is_file():
        raise SeedError(f"seed {seed.name!r}: {edit.file} is not in the checkout")
    text = path.read_text()
    if edit.prepend:
        path.write_text(edit.prepend + text)
        return
    found = text.count(edit.old)
    if found != edit.count:
        raise SeedError(
            f"seed {seed.name!r}: {edit.file} has {edit.old.strip()!r} {found} time(s), "
            f"expected {edit.count}: the checkout's code moved on; the seed needs updating"
        )
    path.write_text(text.replace(edit.old, edit.new))


def copy_checkout(src: Path, dest: Path) -> None:
    """The checkout's code at `dest`, without its repository, logs, caches or venvs."""
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns(*NOT_COPIED), symlinks=True)


def seeded_copy(src: Path, into: Path, seeds: list[Seed]) -> Path:
    """A copy of the checkout SRC at INTO/<name of SRC> with SEEDS applied in order.

    INTO must be outside SRC (a copy inside the checkout would be part of it)."""
    src, into = src.resolve(), into.resolve()
    if not src.is_dir():
        raise SeedError(f"{src}: not a directory (the app's checkout)")
    if into == src or src in into.parents:
        raise SeedError(f"{into}: inside the checkout {src}; copies go outside it")
    copy = into / src.name
    if copy.exists():
        raise SeedError(f"{copy} exists already; give an empty folder")
    copy_checkout(src, copy)
    try:
        for seed in seeds:
            for edit in seed.edits:
                apply_edit(copy, seed, edit)
    except BaseException:
        shutil.rmtree(copy, ignore_errors=True)  # no half-seeded copy is left to be run
        raise
    return copy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m testbed.hosted.seeding",
        description="Copy an app's checkout and apply seeds from config/seeds/APP.toml "
        "(known defects fixed, defects planted); the checkout itself is never edited.",
    )
    parser.add_argument("--app", default="archivist-flask", help="the seeds' catalogue")
    parser.add_argument("--list", action="store_true", help="list the seeds and exit")
    parser.add_argument("--app-src", type=Path, help="the checkout to copy")
    parser.add_argument("--into", type=Path, help="an empty folder outside the checkout")
    parser.add_argument("seeds", nargs="*", metavar="SEED", help="seeds to apply, in order")
    args = parser.parse_args(argv)
    try:
        catalogue = load_seeds(args.app)
        if args.list:
            for seed in catalogue.values():
                needs = f" (after {', '.join(seed.requires)})" if seed.requires else ""
                why = " ".join(seed.why.split())
                print(f"{seed.name:24} {seed.kind:7} {why[:200]}{needs}")
            return 0
        if args.app_src is None or args.into is None or not args.seeds:
            parser.error("give --app-src, --into and at least one SEED (or --list)")
        copy = seeded_copy(args.app_src, args.into, in_order(catalogue, args.seeds))
    except SeedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(copy)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

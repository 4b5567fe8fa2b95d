"""The repository points its readers only at files it holds.

The team's shared folder (reference texts, notes) sits beside the repository on the
machines it was built on, not in a user's clone: a path into it is a dead link there.
What users need from it is copied into docs/.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# "shared/x" or an absolute ".../shared/x", not part of a longer path ("pkg/shared/x").
SHARED_PATH = re.compile(r"(?<![\w./-])(?:/[\w.-]+)*?/?\bshared/[\w.-][\w./-]*")


def tracked_files() -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=30
    )
    return [ROOT / name for name in out.stdout.decode().split("\0") if name]


def test_no_tracked_file_points_into_a_shared_folder_the_clone_lacks() -> None:
    dead = []
    for path in tracked_files():
        if path == Path(__file__).resolve():
            continue  # its own examples of what the pattern catches
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue  # binary, or deleted in the work tree
        for number, line in enumerate(text.splitlines(), 1):
            for match in SHARED_PATH.finditer(line):
                target = match.group().rstrip(".")
                relative = target[target.index("shared/") :]
                if not (ROOT / relative).exists():
                    dead.append(f"{path.relative_to(ROOT)}:{number}: {target}")
    assert not dead, "paths outside the repository:\n" + "\n".join(dead)


def test_the_pattern_finds_relative_and_absolute_shared_paths() -> None:
    found = SHARED_PATH.findall(
        "see /work/shared/reference/a.md, `shared/reference/b.md` and x/shared/not-this"
    )
    assert found == ["/work/shared/reference/a.md", "shared/reference/b.md"]

"""Seeded copies of a checkout: the catalogue's data is checked, a seed that no longer
fits the code is refused by name, and the checkout itself is never touched."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from testbed.hosted.seeding import SeedError, in_order, load_seeds, seeded_copy
from testbed.stack_settings import REPO_ROOT

CATALOGUE = """
[[seed]]
name = "fixed"
kind = "fix"
why = "the greeting is right"
edits = [{ file = "app/hello.py", old = "helo", new = "hello" }]

[[seed]]
name = "broken"
kind = "defect"
requires = ["fixed"]
why = "the greeting is shouted"
edits = [
  { file = "app/hello.py", prepend = "# seeded\\n" },
  { file = "app/hello.py", old = "hello", new = "HELLO" },
]
"""


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "app").mkdir(parents=True)
    (src / "app" / "hello.py").write_text("print('helo')\n")
    (src / ".git").mkdir()
    (src / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    return src


@pytest.fixture
def seeds_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "seeds"
    folder.mkdir()
    (folder / "demo.toml").write_text(CATALOGUE)
    return folder


def test_seeds_apply_after_what_they_require_to_a_copy_only(
    checkout: Path, seeds_dir: Path, tmp_path: Path
) -> None:
    seeds = load_seeds("demo", seeds_dir)
    order = in_order(seeds, ["broken"])
    assert [s.name for s in order] == ["fixed", "broken"]
    copy = seeded_copy(checkout, tmp_path / "out", order)
    assert (copy / "app" / "hello.py").read_text() == "# seeded\nprint('HELLO')\n"
    assert (checkout / "app" / "hello.py").read_text() == "print('helo')\n"
    assert not (copy / ".git").exists()  # a copy of the code, not of the repository


def test_a_seed_whose_text_moved_on_is_refused_and_leaves_no_copy(
    checkout: Path, seeds_dir: Path, tmp_path: Path
) -> None:
    (checkout / "app" / "hello.py").write_text("print('hi')\n")
    seeds = load_seeds("demo", seeds_dir)
    with pytest.raises(SeedError, match=r"seed 'fixed': app/hello.py has 'helo' 0 time\(s\)"):
        seeded_copy(checkout, tmp_path / "out", in_order(seeds, ["fixed"]))
    assert not (tmp_path / "out" / "src").exists()


def test_bad_requests_are_errors_that_name_what_to_fix(
    checkout: Path, seeds_dir: Path, tmp_path: Path
) -> None:
    seeds = load_seeds("demo", seeds_dir)
    with pytest.raises(SeedError, match=r"no seed 'nope' \(known: broken, fixed\)"):
        in_order(seeds, ["nope"])
    with pytest.raises(SeedError, match="inside the checkout"):
        seeded_copy(checkout, checkout / "copies", in_order(seeds, ["fixed"]))
    with pytest.raises(SeedError, match="no seeds for app 'other' \\(known: demo\\)"):
        load_seeds("other", seeds_dir)
    (seeds_dir / "bad.toml").write_text('[[seed]]\nname = "x"\nkind = "oops"\nedits = []\n')
    with pytest.raises(SeedError, match="kind must be one of fix, defect"):
        load_seeds("bad", seeds_dir)
    (seeds_dir / "loop.toml").write_text(
        '[[seed]]\nname = "a"\nkind = "fix"\nrequires = ["b"]\n'
        'edits = [{ file = "f", prepend = "x" }]\n'
        '[[seed]]\nname = "b"\nkind = "fix"\nrequires = ["a"]\n'
        'edits = [{ file = "f", prepend = "x" }]\n'
    )
    with pytest.raises(SeedError, match=r"requires itself \(a -> b -> a\)"):
        in_order(load_seeds("loop", seeds_dir), ["a"])


def test_the_apps_catalogue_loads_and_the_cli_answers_bad_input_with_exit_2(
    tmp_path: Path,
) -> None:
    seeds = load_seeds("archivist-flask")
    assert {"publish-fixed", "publish-vod-row-dropped", "connection-leak"} <= set(seeds)
    cli = [sys.executable, "-m", "testbed.hosted.seeding"]
    listed = subprocess.run([*cli, "--list"], capture_output=True, text=True, cwd=REPO_ROOT)
    assert listed.returncode == 0 and "publish-fixed" in listed.stdout
    bad = subprocess.run(
        [*cli, "--app-src", str(tmp_path / "none"), "--into", str(tmp_path / "o"), "fixed"],
        capture_output=True, text=True, cwd=REPO_ROOT,
    )  # fmt: skip
    assert bad.returncode == 2 and "error: no seed 'fixed'" in bad.stderr
    assert "Traceback" not in bad.stderr

"""The paired gate of two app versions, without hosting them: where OLD comes from, what
each side's slices are told, and bad input answered with one line and exit 2."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from analysis.config import load_config
from analysis.load import InputError
from analysis.paired_apps import app_spec, old_tree, slice_flags
from tests.conftest import run_module, without_archivist_src

ROOT = Path(__file__).resolve().parents[2]


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=repo, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stdout.strip()


@pytest.fixture
def app_repo(tmp_path: Path) -> Path:
    """A checkout with two commits: `main` says v1, HEAD says v2."""
    repo = tmp_path / "app"
    (repo / "core").mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    (repo / "core" / "version.py").write_text("V = 1\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "v1")
    git(repo, "checkout", "-q", "-b", "pr")
    (repo / "core" / "version.py").write_text("V = 2\n")
    git(repo, "commit", "-q", "-am", "v2")
    return repo


def test_old_is_a_ref_of_news_repository_exported_or_a_folder_copied(
    app_repo: Path, tmp_path: Path
) -> None:
    tree, label = old_tree("main", app_repo, tmp_path / "work1")
    assert (tree / "core" / "version.py").read_text() == "V = 1\n"
    assert label.startswith("main = ") and not (tree / ".git").exists()
    assert (app_repo / "core" / "version.py").read_text() == "V = 2\n"  # NEW untouched
    assert git(app_repo, "status", "--porcelain") == ""

    tree, label = old_tree(str(app_repo), app_repo, tmp_path / "work2")
    assert (tree / "core" / "version.py").read_text() == "V = 2\n"
    assert label == str(app_repo) and not (tree / ".git").exists()


def test_an_old_that_is_neither_a_folder_nor_a_ref_is_one_clear_error(
    app_repo: Path, tmp_path: Path
) -> None:
    with pytest.raises(InputError, match="--against nope: not a commit of this repository"):
        old_tree("nope", app_repo, tmp_path / "w")
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(InputError, match="is not a git repository to take a ref from"):
        old_tree("main", plain, tmp_path / "w2")


def test_each_side_gets_the_apps_profile_source_addresses_and_its_own_fixtures(
    tmp_path: Path,
) -> None:
    hosted = app_spec("archivist-flask")
    flags = slice_flags(hosted, tmp_path / "f.json")
    assert flags[:2] == ["--routes", "archivist-flask"]
    assert "--source-addresses" in flags and flags[-2:] == ["--fixtures", str(tmp_path / "f.json")]
    paired = load_config(ROOT / "config" / "gate.toml", "archivist-flask").paired
    reference = load_config(ROOT / "config" / "gate.toml").paired
    assert paired.locust_flags and not reference.locust_flags  # [apps.archivist-flask.paired]
    assert paired.warmup_s > reference.warmup_s


def run_gate(*args: str) -> subprocess.CompletedProcess[str]:
    return run_module("analysis", "gate", *args, timeout=60, env=without_archivist_src())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--against", "main", "--app-src", "/tmp"], "--app-src with --against needs --app NAME"),
        (["--against", "main", "--app", "archivist-flask"], "needs --app-src NEW"),
        (
            ["--against", "main", "--app", "archivist-flask", "--app-src", "/nonexistent"],
            "--app-src /nonexistent: not a folder",
        ),
        (
            ["--against", "main", "--app", "no-such-app", "--app-src", "/tmp"],
            "no-such-app",
        ),
    ],
)
def test_bad_paired_app_input_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    done = run_gate(*args)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr

"""`python -m experiments`: bad input gets one precise line and exit code 2, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import run_module

from .conftest import run_experiments as cli

REPO = Path(__file__).resolve().parents[2]


def test_the_catalogue_checks_and_lists() -> None:
    checked = cli("check")
    assert checked.returncode == 0, checked.stderr
    assert "experiment files are valid" in checked.stdout
    listed = cli("list")
    assert "postgres-down" in listed.stdout and "INVALID" not in listed.stdout


def test_the_old_name_python_m_faults_still_runs_every_command() -> None:
    """`python -m faults ...` (deprecated) is the same CLI under its old name."""
    old, new = (run_module(m, "run", "nope", timeout=60) for m in ("faults", "experiments"))
    assert old.returncode == new.returncode == 2
    assert old.stderr == new.stderr and old.stderr.startswith("error: unknown experiment nope;")
    helped = run_module("faults", "--help", timeout=60)
    assert helped.returncode == 0 and helped.stdout.startswith("usage: python -m faults ")
    for command in ("run", "list", "check", "cleanup", "resilience", "scorecard", "audit"):
        assert command in helped.stdout
    checked = run_module("faults", "check", timeout=60)
    assert checked.returncode == 0 and "experiment files are valid" in checked.stdout


def test_a_missing_or_malformed_experiment_exits_2_with_the_reason(tmp_path: Path) -> None:
    missing = cli("run", str(tmp_path / "nope.toml"))
    assert missing.returncode == 2
    assert (
        missing.stderr.strip()
        == f"error: {tmp_path / 'nope.toml'}: cannot read: No such file or directory"
    )
    bad = tmp_path / "bad.toml"
    bad.write_text(
        (REPO / "config/experiments/postgres-down.toml")
        .read_text()
        .replace('link = "postgres"', 'link = "postgress"')
    )
    answer = cli("check", str(bad))
    assert answer.returncode == 1
    assert f'{bad}: faults[0].link "postgress" is not a proxy' in answer.stderr
    assert "Traceback" not in answer.stderr


def test_an_unknown_experiment_name_lists_the_known_ones() -> None:
    known = sorted(p.stem for p in (REPO / "config/experiments").glob("*.toml"))
    expected = f"error: unknown experiment nope; known: {', '.join(known)}"
    for given in ("nope", "config/experiments/nope.toml"):
        answer = cli("run", given)
        assert answer.returncode == 2
        assert answer.stderr.strip() == expected
    # -o: never (re)install the venv from a test; BIN: this interpreter's
    make = ["make", "--no-print-directory", "-o", ".venv/.installed", "experiment"]
    made = subprocess.run(
        [*make, "NAME=nope", f"BIN={Path(sys.executable).parent}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 2
    assert expected in made.stderr and "Traceback" not in made.stderr


def test_check_of_a_folder_checks_the_files_in_it(tmp_path: Path) -> None:
    catalogue = cli("check", "config/experiments")
    count = len(list((REPO / "config/experiments").glob("*.toml")))
    assert catalogue.returncode == 0, catalogue.stderr
    assert catalogue.stdout.strip() == f"{count} of {count} experiment files are valid"
    empty = cli("check", str(tmp_path))
    assert empty.returncode == 2
    assert empty.stderr.strip() == f"error: {tmp_path} is a folder without .toml experiment files"
    run = cli("run", str(tmp_path))
    assert run.returncode == 2
    assert run.stderr.strip() == f"error: {tmp_path} is a folder, not an experiment file"


def test_an_external_target_without_its_toxiproxy_is_refused(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TOXIPROXY_URL"}
    answer = cli(
        "run",
        "config/experiments/postgres-down.toml",
        "--host",
        "http://127.0.0.1:9",
        "--run-dir",
        str(tmp_path / "run"),
        env=env,
    )
    assert answer.returncode == 2
    assert "needs $TOXIPROXY_URL" in answer.stderr and "Traceback" not in answer.stderr


def test_a_missing_app_log_is_refused_before_anything_starts(tmp_path: Path) -> None:
    answer = cli(
        "run",
        "config/experiments/postgres-down.toml",
        "--run-dir",
        str(tmp_path / "run"),
        "--app-log",
        str(tmp_path / "api.log"),
    )
    assert answer.returncode == 2
    assert answer.stderr.strip() == f"error: --app-log {tmp_path / 'api.log'}: no such file"
    assert not (tmp_path / "run").exists()


def test_cleanup_with_nothing_left_says_so(tmp_path: Path) -> None:
    answer = cli("cleanup", env=os.environ | {"LOADKIT_FAULTS_JOURNAL": str(tmp_path)})
    assert answer.returncode == 0 and answer.stdout.strip() == "nothing left behind"


def test_audit_without_a_usable_run_folder_exits_2_naming_it(tmp_path: Path) -> None:
    missing = cli("audit", str(tmp_path / "nope"), "--database-url", "postgresql://x")
    assert missing.returncode == 2
    assert missing.stderr.strip() == f"error: {tmp_path / 'nope'}: no such run folder"
    empty = cli("audit", str(tmp_path), "--database-url", "postgresql://x")
    assert empty.returncode == 2 and "no ledger-*.jsonl" in empty.stderr
    (tmp_path / "ledger-1.jsonl").write_text('{"ts": 1, "kind": "created", "id": 1}\n')
    down = cli("audit", str(tmp_path), "--database-url", "postgresql://127.0.0.1:9/x")
    assert down.returncode == 2 and down.stderr.startswith("error: database postgresql://")
    assert len(down.stderr.strip().splitlines()) == 1 and "Traceback" not in down.stderr


def test_an_unknown_route_profile_is_one_line(tmp_path: Path) -> None:
    answer = cli(
        "run", "config/experiments/postgres-down.toml", "--routes", "archivist-flsk",
        "--run-dir", str(tmp_path / "run"),
    )  # fmt: skip
    assert answer.returncode == 2
    assert answer.stderr.strip() == (
        "error: --routes 'archivist-flsk': no such profile; known: archivist-flask, contract"
    )


def test_the_audit_follows_the_run_s_profile_or_says_it_has_none(tmp_path: Path) -> None:
    (tmp_path / "ledger-1.jsonl").write_text(
        '{"ts": 1, "kind": "ack", "request": "POST /api/upload", "values": {"file_id": "f"}}\n'
    )
    bare = tmp_path / "bare.toml"
    bare.write_text('[auth]\nmode = "none"\n[routes]\nhealth = "GET /h"\n')
    none = cli("audit", str(tmp_path), "--routes", str(bare), "--database-url", "postgresql://x")
    assert none.returncode == 0, none.stderr
    assert none.stdout.strip() == (
        f"audit of {tmp_path}: profile bare defines no audit (no [audit] in its config/routes "
        "file): nothing was audited"
    )
    # Without --routes, the run's own profile (meta.json) decides: the Flask app's tables.
    (tmp_path / "meta.json").write_text('{"options": {"routes": "archivist-flask"}}')
    down = cli("audit", str(tmp_path), "--database-url", "postgresql://127.0.0.1:9/x")
    assert down.returncode == 2 and down.stderr.startswith("error: database postgresql://")
    assert len(down.stderr.strip().splitlines()) == 1 and "Traceback" not in down.stderr

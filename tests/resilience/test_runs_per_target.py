"""Experiments per target on the real stack: a fault that hit nothing gets no verdict, the
route profile picks the routes and the audit, and an audit that does not fit says so."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
import pytest

from experiments.audit_result import AuditError
from experiments.audit_tables import fetch_present
from testbed.api.client import ArchivistClient
from testbed.stack import Stack
from testbed.target import Target
from tests.conftest import retrying_503
from workload.routes import Profile

from .conftest import run_experiment, run_experiments

REPO = Path(__file__).resolve().parents[2]

# 14 s of load: 2 s warm-up, 3 s before, 3 s fault, 2 s recovery allowance, 2 s after.
SHORT = """
title = "short"
[load]
locustfile = "locustfiles/vod.py"
users = 3
spawn_rate = 3
duration = "14s"
warmup = "2s"
{load}
[[faults]]
link = "{link}"
toxic = "latency"
attributes = {{ latency = 100 }}
at = "5s"
for = "3s"
[hypothesis]
error_rate = "< 5%"
recovers_within = "2s"
sustained = "2s"
[hypothesis.during]
error_rate = "<= 100%"
"""
DB_EDITORS = 'tags = ["db"]\nuser_classes = ["VodEditor"]'  # they never publish to Cablecast


def flask_routes_for_contract_users(tmp_path: Path) -> Path:
    """The Flask app's profile (routes, audit) without its own user class, so the
    contract's users run against it: a profile whose routes differ from the workload's."""
    text = (REPO / "config/routes/archivist-flask.toml").read_text()
    lines = [line for line in text.splitlines() if not line.startswith("users = ")]
    path = tmp_path / "flask-routes.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def short_run(
    tmp_path: Path, target: Target, name: str, link: str, load: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    """SHORT with its fault on `link` and `load` in its [load] table, saved as NAME.toml and
    run against the target into tmp_path/run."""
    path = tmp_path / f"{name}.toml"
    path.write_text(SHORT.format(link=link, load=load))
    return run_experiment(path, target, tmp_path / "run", *extra)


def test_a_fault_on_a_link_the_workload_never_uses_hit_nothing(
    target: Target, tmp_path: Path, journal_dir: Path
) -> None:
    """Only the `db` tasks run: nothing is published, so Cablecast sees no byte."""
    done = short_run(tmp_path, target, "cablecast-idle", "cablecast", DB_EDITORS, "--no-audit")
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    report = json.loads((tmp_path / "run" / "verdict.json").read_text())
    assert report["verdict"]["word"] == "FAULT HIT NOTHING" and report["ok"] is False
    [why] = report["verdict"]["hit_nothing"]
    assert why.startswith("latency latency=100 on cablecast: the cablecast link carried no byte")
    assert report["windows"][0]["bytes"] == 0
    # The links the workload did use carried traffic, and the run says how much.
    assert report["links"]["cablecast"] == {"upstream": 0, "downstream": 0}
    assert sum(report["links"]["postgres"].values()) > 0
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("verdict: FAULT HIT NOTHING (no verdict): latency latency=100 on")


@contextmanager
def listing_all_along(api_url: str) -> Iterator[list[int]]:
    """A client listing VODs (a query on the postgres link) every 0.2 s for the block; yields
    the statuses it got. The 3 editors think 0.5 to 2 s between actions, so a busy machine
    may leave the link idle for the 3 s window (Locust starved, the users all thinking); this
    client keeps it in use. It lists only: the cablecast link stays as idle as before."""
    stop = threading.Event()
    statuses: list[int] = []

    def list_vods() -> None:
        with ArchivistClient(api_url, timeout=10) as api:
            while api.token is None and not stop.wait(0.2):  # a 503 now and then: again
                with contextlib.suppress(httpx.HTTPError):
                    retrying_503(api.login)  # set-up: a loaded box may 503 it
            while not stop.wait(0.2):
                with contextlib.suppress(httpx.HTTPError):
                    statuses.append(
                        api.request("GET", "/api/vods", params={"limit": 1}).status_code
                    )

    thread = threading.Thread(target=list_vods, daemon=True)
    thread.start()
    try:
        yield statuses
    finally:
        stop.set()
        thread.join(30)


def test_a_fault_on_a_link_in_use_carries_bytes_and_keeps_its_verdict(
    target: Target, tmp_path: Path, journal_dir: Path
) -> None:
    with listing_all_along(target.api_url) as statuses:
        done = short_run(tmp_path, target, "postgres-used", "postgres", DB_EDITORS, "--no-audit")
    assert 200 in statuses, statuses  # the link was in use all along
    assert (tmp_path / "run" / "verdict.json").exists(), done.stderr[-3000:]
    report = json.loads((tmp_path / "run" / "verdict.json").read_text())
    assert report["verdict"]["hit_nothing"] == [], done.stdout
    assert report["windows"][0]["bytes"] > 0
    assert "FAULT HIT NOTHING" not in done.stdout


def test_the_flask_profile_on_the_reference_stack_runs_and_its_audit_says_what_it_checked(
    target: Target, tmp_path: Path, journal_dir: Path
) -> None:
    """--routes picks the Flask app's routes (only its health route fits this workload
    selection) and its audit (its own tables, with nothing of theirs acknowledged here)."""
    routes = str(flask_routes_for_contract_users(tmp_path))
    load = 'tags = ["system"]\nuser_classes = ["VodEditor"]'
    done = short_run(tmp_path, target, "flask", "redis", load, "--routes", routes)
    assert "Traceback" not in done.stderr, done.stderr
    report = json.loads((tmp_path / "run" / "verdict.json").read_text())
    assert report["routes"] == routes
    assert done.returncode == (0 if report["ok"] else 1), done.stderr
    assert report["coverage"]["skipped"] == []  # only the health task was selected
    audit = report["audit"]
    assert audit["notes"] == ["the ledger holds no acknowledged write this profile audits"]
    assert "note: the ledger holds no acknowledged write this profile audits" in done.stdout
    assert "relation" not in done.stdout + done.stderr  # never the contract's vods table


def test_a_silent_workload_stops_the_experiment_with_one_line(
    target: Target, tmp_path: Path, journal_dir: Path
) -> None:
    """The Flask profile with the open-model reader: it needs a listing route the profile
    lacks, so it never sends a request."""
    routes = str(flask_routes_for_contract_users(tmp_path))
    load = 'user_classes = ["OpenModelReader"]'
    done = short_run(tmp_path, target, "silent", "redis", load, "--routes", routes)
    assert done.returncode == 2, done.stderr
    errors = done.stderr.strip().splitlines()
    assert errors[-1].startswith(
        "error: the workload was silent: user class OpenModelReader sent no request"
    ), done.stderr
    assert "Traceback" not in done.stderr


def test_an_audit_of_tables_the_database_lacks_says_whose_they_are(stack: Stack) -> None:
    """The Flask profile's audit pointed at the reference stack's database."""
    flask = Profile.load("archivist-flask")
    with pytest.raises(AuditError) as info:
        fetch_present(str(stack.database_url), flask, {("digital_files", "id"): ["f1"]})
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("profile archivist-flask audits digital_files.id, which the database")
    assert message.endswith("is it the archivist-flask deployment's database?")


def test_a_profile_audited_by_tables_checks_real_rows(stack: Stack, tmp_path: Path) -> None:
    """The generic audit on real data: the contract's routes, with a `tables` rule that
    each acknowledged create is a row of `vods`; one row deleted behind its back is lost."""
    contract = (REPO / "config" / "routes" / "contract.toml").read_text()
    # Without the delete route: an editor deleting its own VOD would make its create "lost".
    routes = "".join(
        line
        for line in contract.split("[audit]")[0].splitlines(True)
        if not line.startswith("delete_vod")
    )
    profile = tmp_path / "tables.toml"
    profile.write_text(
        routes + '[audit]\nchecks = "tables"\n[[audit.durable]]\nrequest = "POST /api/vods"\n'
        'field = "id"\ntable = "vods"\ncolumn = "id"\n'
    )
    run_dir = tmp_path / "run"
    # 5 editors for 12 s: create is 2 of the db tasks' weight 18, so some are all but sure.
    locust = [sys.executable, "-m", "locust", "-f", "locustfiles/vod.py", "VodEditor"]
    subprocess.run(
        [
            *locust,
            "--headless", "-u", "5", "-r", "5", "-t", "12s", "-T", "db",
            "--host", stack.api_url, "--routes", str(profile), "--run-dir", str(run_dir),
        ],
        cwd=REPO,
        capture_output=True,
        timeout=90,
    )  # fmt: skip
    acks = [
        json.loads(line)
        for p in run_dir.glob("ledger-*.jsonl")
        for line in p.read_text().splitlines()
    ]
    # The ledger also holds the contract's own entries (updates, deletes): only acks count.
    created = [
        a["values"]["id"]
        for a in acks
        if a.get("kind") == "ack" and a.get("request") == "POST /api/vods"
    ]
    assert created, acks
    args = ["audit", str(run_dir), "--routes", str(profile)]
    args += ["--database-url", str(stack.database_url)]
    kept = run_experiments(*args)
    assert kept.returncode == 0, kept.stdout + kept.stderr
    assert f"'vods.id': {len(set(created))}" in kept.stdout
    with psycopg.connect(str(stack.database_url), autocommit=True) as conn:
        conn.execute("DELETE FROM vods WHERE id = %s", (created[0],))
    lost = run_experiments(*args)
    assert lost.returncode == 1, lost.stdout + lost.stderr
    assert (
        f"lost: {created[0]}: POST /api/vods acknowledged, but no vods row has id = '{created[0]}'"
    ) in lost.stdout

"""The audit against the real stack: a clean run passes, and tampering behind the
toolkit's back (a row deleted in PostgreSQL, a second VOD posted to Cablecast) is caught
and named."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
import pytest

from experiments.audit_contract import run_audit
from experiments.audit_result import Sources
from experiments.experiment import Audit
from testbed.api.settings import AppConfig
from testbed.stack import Stack

USERS = AppConfig.load().users
# A regular seeded user: the workloads lock out the last seeded users and mistype the ones
# before them (config/workload.toml [users]); the auth tests use the first two and the last.
# (user049 was a lock-out user: after the auth workload's tests it answered 429.)
USER, PASSWORD = USERS.names()[2], USERS.password
CABLECAST_AUTH = ("archivist", "cablecast-secret")  # config/archivist.toml [cablecast]


@contextmanager
def api(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.api_url, timeout=10, trust_env=False) as client:
        token = client.post("/api/auth/login", json={"username": USER, "password": PASSWORD})
        token.raise_for_status()
        client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        yield client


def create(client: httpx.Client, title: str) -> dict:
    key = str(uuid.uuid4())
    body = {"title": title, "file_name": "a.mp4", "duration_s": 60, "size_bytes": 1000}
    answer = client.post("/api/vods", json=body, headers={"Idempotency-Key": key})
    assert answer.status_code == 201, answer.text
    vod = answer.json()
    return {
        "ts": time.time(),
        "kind": "created",
        "id": vod["id"],
        "idempotency_key": key,
        "version": vod["version"],
        "status": vod["status"],
        "title": title,
    }


def publish(client: httpx.Client, vod_id: int) -> dict:
    assert client.post(f"/api/vods/{vod_id}/process").status_code == 202
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        vod = client.get(f"/api/vods/{vod_id}").json()
        if vod["status"] == "published":
            return {
                "ts": time.time(),
                "kind": "published",
                "id": vod_id,
                "cablecast_show_id": vod["cablecast_show_id"],
                "cablecast_vod_id": vod["cablecast_vod_id"],
                "version": vod["version"],
            }
        assert vod["status"] != "failed", vod
        time.sleep(0.3)
    pytest.fail(f"VOD {vod_id} was not published within 60 s")


def test_the_audit_catches_a_deleted_row_and_a_duplicated_cablecast_vod(
    clean_faults: Stack, tmp_path: Path
) -> None:
    stack = clean_faults
    with api(stack) as client:
        kept = create(client, "Audit kept")
        doomed = create(client, "Audit doomed")
        published = publish(client, kept["id"])
        client.get(f"/api/vods/{doomed['id']}")  # cached now
    ledger = [kept, doomed, published]
    (tmp_path / "ledger-1.jsonl").write_text("".join(json.dumps(e) + "\n" for e in ledger))
    sources = Sources(stack.database_url, stack.redis_url, stack.cablecast_url)

    clean = run_audit(tmp_path, sources, Audit())
    assert clean.counts() == {"lost": 0, "duplicated": 0, "inconsistent": 0, "stuck": 0}, (
        clean.to_json()
    )
    assert clean.checked["published"] == 1
    kept_cli = audit_cli(tmp_path, stack.database_url)
    assert kept_cli.returncode == 0, kept_cli.stdout + kept_cli.stderr

    with psycopg.connect(stack.database_url) as conn:
        conn.execute("DELETE FROM vods WHERE id = %s", (doomed["id"],))
    second = httpx.post(
        f"{stack.cablecast_url}/vods",
        json={"vod": {"show": published["cablecast_show_id"], "vodConfiguration": 1}},
        auth=CABLECAST_AUTH,
        timeout=10,
    )
    assert second.status_code in (200, 201), second.text
    second_id = second.json()["vod"]["id"]

    tampered = run_audit(tmp_path, sources, Audit())
    assert [(f.id, f.problem) for f in tampered.lost] == [
        (doomed["id"], "acknowledged (version 1) but not in the database")
    ]
    assert [(f.id, f.problem) for f in tampered.duplicated] == [
        (kept["id"], f"2 Cablecast VODs: {sorted([published['cablecast_vod_id'], second_id])}")
    ]
    # the cached copy of the deleted row is now served for a VOD that does not exist
    assert [f.id for f in tampered.inconsistent] == [doomed["id"]]
    assert not tampered.ok

    # The CLI with only the database: the row is missed; Cablecast and cache are skipped.
    found = audit_cli(tmp_path, stack.database_url)
    assert found.returncode == 1, found.stdout + found.stderr
    lost = f"lost: VOD {doomed['id']}: acknowledged (version 1) but not in the database"
    assert lost in found.stdout
    assert "Cablecast" in found.stdout and "SKIPPED (no --cablecast-url)" in found.stdout
    assert "SKIPPED (no --redis-url)" in found.stdout and "duplicated 0" in found.stdout


def audit_cli(run_dir: Path, database_url: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "faults", "audit", str(run_dir)]
    return subprocess.run(
        [*command, "--database-url", database_url],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=60,
    )

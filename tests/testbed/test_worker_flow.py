"""The worker: upload -> process -> published, exactly once in Cablecast, also when the
worker is killed in the middle of a job."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis

from testbed.api.client import ArchivistClient
from testbed.api.settings import DEFAULT_CONFIG, AppConfig
from testbed.stack import Stack
from testbed.worker.publish import marker
from tests.conftest import retrying_503

from .test_api_auth import assert_error


def cablecast_posts(stack: Stack, resource: str) -> list[dict[str, Any]]:
    """Successful POSTs the simulator received for `resource` ("shows" or "vods")."""
    response = httpx.get(
        f"{stack.cablecast_url}/_audit/received",
        params={"method": "POST", "limit": 100000},
        timeout=10,
    )
    response.raise_for_status()
    return [
        r
        for r in response.json()["received"]
        if r["path"].endswith(f"/{resource}") and r["status"] == 200
    ]


def assert_published_once(stack: Stack, vod: dict[str, Any]) -> None:
    tag = marker(vod["id"])
    shows = [
        r
        for r in cablecast_posts(stack, "shows")
        if tag in str(r["body"]["show"].get("comments", ""))
    ]
    assert len(shows) == 1, shows
    vods = [
        r
        for r in cablecast_posts(stack, "vods")
        if r["body"]["vod"]["show"] == vod["cablecast_show_id"]
    ]
    assert len(vods) == 1, vods
    remote = httpx.get(f"{stack.cablecast_url}/vods/{vod['cablecast_vod_id']}", timeout=10)
    assert remote.status_code == 200
    assert remote.json()["vod"]["show"] == vod["cablecast_show_id"]


@pytest.fixture
def api(stack: Stack) -> Any:
    with ArchivistClient(stack.api_url) as client:
        retrying_503(client.login)  # set-up, not judged: a loaded box may 503 it
        yield client


def test_upload_process_publish_ends_in_cablecast_exactly_once(
    stack: Stack, api: ArchivistClient
) -> None:
    vod = api.create_vod(title="Planning board", description="June meeting")
    started = api.request("POST", f"/api/vods/{vod['id']}/process")
    assert started.status_code == 202
    job_id = started.json()["job_id"]
    assert job_id
    # asking again while it runs keeps the same job
    assert api.request("POST", f"/api/vods/{vod['id']}/process").json()["job_id"] == job_id
    done = api.wait_for(vod["id"], {"published", "failed"}, timeout=30)
    assert done["status"] == "published", done
    assert done["cablecast_show_id"] and done["cablecast_vod_id"]
    assert_published_once(stack, done)
    assert_error(api.request("POST", f"/api/vods/{vod['id']}/process"), 409, "conflict")

    shows = api.request("GET", "/api/shows", params={"q": marker(vod["id"])})
    assert shows.status_code == 200
    assert [s["id"] for s in shows.json()["items"]] == [done["cablecast_show_id"]]
    cached = api.request("GET", "/api/shows", params={"q": marker(vod["id"])})
    assert cached.headers["X-Source"] == "cache"


def slow_worker_config(tmp_path: Path) -> Path:
    """The usual config with 1.5 s per stage, so a test can kill the worker mid-stage."""
    text = DEFAULT_CONFIG.read_text()
    text = text.replace("stage_min_ms = 100", "stage_min_ms = 1500")
    text = text.replace("stage_max_ms = 300", "stage_max_ms = 1500")
    assert "stage_min_ms = 1500" in text
    path = tmp_path / "archivist-slow.toml"
    path.write_text(text)
    return path


def kill_the_worker_mid_job(
    stack: Stack, api: ArchivistClient, tmp_path: Path, title: str
) -> dict[str, Any]:
    """A new VOD whose job a slow worker has started (status transcoding) when it is
    SIGKILLed: the job is left claimed by a dead worker."""
    stack.restart("worker", env={"ARCHIVIST_CONFIG": str(slow_worker_config(tmp_path))})
    vod = api.create_vod(title=title)
    assert api.request("POST", f"/api/vods/{vod['id']}/process").status_code == 202
    api.wait_for(vod["id"], {"transcoding"}, timeout=15, poll=0.02)
    stack.kill("worker")
    return vod


def test_a_worker_killed_mid_job_is_restarted_and_finishes_it_exactly_once(
    clean_faults: Stack, api: ArchivistClient, tmp_path: Path
) -> None:
    stack = clean_faults
    vod = kill_the_worker_mid_job(stack, api, tmp_path, "Killed mid-job")
    time.sleep(1.0)
    assert api.get_vod(vod["id"])["status"] == "transcoding"  # nobody else is working on it
    stack.start("worker")  # the usual fast config
    done = api.wait_for(vod["id"], {"published", "failed"}, timeout=30)
    assert done["status"] == "published", done
    assert_published_once(stack, done)


def test_another_worker_reclaims_the_job_of_a_dead_one(
    clean_faults: Stack, api: ArchivistClient, tmp_path: Path
) -> None:
    stack = clean_faults
    vod = kill_the_worker_mid_job(stack, api, tmp_path, "Reclaimed by another worker")
    log_path = tmp_path / "rescuer.log"
    env = dict(stack.app_env) | {"ARCHIVIST_WORKER_NAME": f"rescuer-{vod['id']}"}
    env.pop("ARCHIVIST_CONFIG", None)
    with log_path.open("wb") as log:
        rescuer = subprocess.Popen(
            [sys.executable, "-m", "testbed.worker"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        done = api.wait_for(vod["id"], {"published", "failed"}, timeout=30)
    finally:
        os.killpg(rescuer.pid, signal.SIGKILL)
        rescuer.wait(10)
    assert done["status"] == "published", done
    assert_published_once(stack, done)
    assert "reclaimed" in log_path.read_text()


def test_a_job_read_before_its_transaction_commits_is_not_dropped(
    stack: Stack, api: ArchivistClient
) -> None:
    """The API queues the job inside the transaction that records its id; a worker that
    reads the message first must wait for that commit, not drop the job as stale."""
    queue = AppConfig.load().queue
    vod = api.create_vod(title="Read before commit")
    job_id = f"early-{vod['id']}"
    direct = redis.Redis.from_url(stack.redis_url)
    try:
        with psycopg.connect(stack.database_url) as conn:  # one open transaction
            conn.execute(
                "UPDATE vods SET job_id = %s, version = version + 1 WHERE id = %s",
                (job_id, vod["id"]),
            )
            direct.xadd(queue.stream, {"job_id": job_id, "vod_id": str(vod["id"])})
            time.sleep(1.0)  # the worker has the message by now and must wait for us
            conn.commit()
    finally:
        direct.close()
    done = api.wait_for(vod["id"], {"published", "failed"}, timeout=30)
    assert done["status"] == "published", done
    assert_published_once(stack, done)


def test_many_jobs_at_once_each_publish_exactly_once(stack: Stack, api: ArchivistClient) -> None:
    vods = [api.create_vod(title=f"batch {n}") for n in range(12)]
    for vod in vods:
        assert api.request("POST", f"/api/vods/{vod['id']}/process").status_code == 202
    for vod in vods:
        done = api.wait_for(vod["id"], {"published", "failed"}, timeout=60)
        assert done["status"] == "published", done
        assert_published_once(stack, done)
    assert len({api.get_vod(v["id"])["cablecast_vod_id"] for v in vods}) == len(vods)

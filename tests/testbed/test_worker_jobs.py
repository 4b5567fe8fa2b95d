"""A job is never lost between PostgreSQL and the Redis stream: it is queued only after its
row is committed, and at most once however often it is asked for. Nor is it retried for
ever: a transaction orphaned on its row cannot keep it from ending."""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import redis

from testbed.api.client import ArchivistClient
from testbed.api.settings import AppConfig
from testbed.stack import Stack
from tests.conftest import retrying_503

from .test_faults_postgres import wait_until_ok
from .test_worker_flow import assert_published_once, slow_worker_config

QUEUE = AppConfig.load().queue


def committed_job_id(stack: Stack, vod_id: int) -> str | None:
    with psycopg.connect(stack.database_url, connect_timeout=5, autocommit=True) as conn:
        row = conn.execute("SELECT job_id FROM vods WHERE id = %s", (vod_id,)).fetchone()
    assert row is not None
    return row[0]


def pending(direct: redis.Redis) -> int:
    summary = direct.xpending(QUEUE.stream, QUEUE.group)
    return int(summary["pending"])


def assert_nothing_pending(direct: redis.Redis, timeout: float = 15.0) -> None:
    """Every delivered job is acknowledged within `timeout`: none left to redeliver."""
    deadline = time.monotonic() + timeout
    while pending(direct) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert pending(direct) == 0, direct.xpending(QUEUE.stream, QUEUE.group)


def test_a_job_is_on_the_queue_only_after_its_row_is_committed(clean_faults: Stack) -> None:
    """Queued before the commit, a fast worker could read the old row and drop the job as
    superseded. A slow database link makes that window wide: the entry must still never
    be visible before the row that names its job."""
    stack = clean_faults
    direct = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    with ArchivistClient(stack.api_url, timeout=30) as api:
        retrying_503(api.login)
        vod = retrying_503(lambda: api.create_vod(title="committed before queued"))
        last: Any = direct.xrevrange(QUEUE.stream, count=1)
        after = last[0][0] if last else "0-0"
        stack.faults.add_toxic(
            "postgres", "latency", {"latency": 300}, stream="upstream", name="slow"
        )
        answer: dict[str, Any] = {}

        def process() -> None:
            started = time.monotonic()
            response = api.request("POST", f"/api/vods/{vod['id']}/process")
            answer.update(status=response.status_code, body=response.text)
            answer["seconds"] = round(time.monotonic() - started, 2)

        call = threading.Thread(target=process)
        call.start()
        try:
            entry = None
            deadline = time.monotonic() + 20
            while entry is None and time.monotonic() < deadline:
                entries: Any = direct.xrange(QUEUE.stream, min=f"({after}")
                for _, fields in entries:
                    if fields.get("vod_id") == str(vod["id"]):
                        entry = fields
                time.sleep(0.01)
            assert entry is not None, "the job never reached the stream"
            assert committed_job_id(stack, vod["id"]) == entry["job_id"]
        finally:
            call.join(30)
            stack.faults.remove_toxic("postgres", "slow")
            direct.close()
        print(f"\nprocess through a 300 ms link: {answer}")
        assert answer.get("status") == 202, answer
        done = api.wait_for(vod["id"], {"published", "failed"}, timeout=30)
    assert done["status"] == "published", done


def test_a_job_is_queued_at_most_once_however_often_it_is_asked_for(stack: Stack) -> None:
    """`process` re-queues a job whose XADD failed after its commit; a job already on the
    stream must not get a second entry from that. The stream is one no worker reads: a
    worker acknowledging the job between the two calls would rightly allow a second."""
    import asyncio
    import dataclasses

    from testbed.api.cache import make_redis
    from testbed.api.queue import enqueue, marker_key

    config = AppConfig.load()
    queue = dataclasses.replace(config.queue, stream=f"test-once-{time.monotonic_ns()}")
    job = "once"

    async def twice() -> tuple[str | None, str | None, int]:
        client = make_redis(stack.redis_url, config.redis)
        try:
            first = await enqueue(client, queue, job, 0)
            second = await enqueue(client, queue, job, 0)
            return first, second, await client.xlen(queue.stream)
        finally:
            await client.delete(queue.stream, marker_key(queue, job))
            await client.aclose()

    first, second, entries = asyncio.run(twice())
    assert first is not None and second is None
    assert entries == 1


def test_a_job_held_through_a_postgres_outage_ends_and_is_acknowledged(
    clean_faults: Stack, tmp_path: Path
) -> None:
    """The worker holds the job when PostgreSQL goes away for longer than its pool's first
    reconnection attempts; once the database is back the job must finish (or fail with a
    reason) and leave the group's pending list, not be redelivered for ever."""
    stack = clean_faults
    stack.restart("worker", env={"ARCHIVIST_CONFIG": str(slow_worker_config(tmp_path))})
    direct = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    try:
        with ArchivistClient(stack.api_url, timeout=30) as api:
            retrying_503(api.login)  # set-up: a loaded box may 503 it
            vod = api.create_vod(title="through a database outage")
            assert api.request("POST", f"/api/vods/{vod['id']}/process").status_code == 202
            api.wait_for(vod["id"], {"transcoding"}, timeout=15, poll=0.02)
            stack.faults.disable("postgres")
            try:
                time.sleep(20.0)  # the stage ends meanwhile; every database step fails
            finally:
                stack.reset_faults()
            done = api.wait_for(vod["id"], {"published", "failed"}, timeout=45)
            assert done["status"] == "published" or done["failure_reason"], done
            assert_nothing_pending(direct)
        if done["status"] == "published":
            assert_published_once(stack, done)
    finally:
        direct.close()


def test_a_transaction_orphaned_on_the_vods_row_cannot_hold_its_job_for_ever(
    clean_faults: Stack, tmp_path: Path
) -> None:
    """A client that vanished mid-transaction (its request cancelled, its link half-open
    after an outage) keeps the VOD's row locked. Every delivery of the job then waits for
    that lock until statement_timeout, unacknowledged, and even giving up cannot write
    `failed`: redelivered for ever. The database must end such a transaction."""
    stack = clean_faults
    stack.restart("worker", env={"ARCHIVIST_CONFIG": str(slow_worker_config(tmp_path))})
    direct = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    orphan = psycopg.connect(stack.database_url, connect_timeout=5)
    try:
        with ArchivistClient(stack.api_url, timeout=30) as api:
            wait_until_ok(lambda: api.http.get("/api/health"))  # after the worker's restart
            retrying_503(api.login)  # set-up: a loaded box may 503 it
            vod = api.create_vod(title="locked by a vanished client")
            assert api.request("POST", f"/api/vods/{vod['id']}/process").status_code == 202
            api.wait_for(vod["id"], {"transcoding"}, timeout=15, poll=0.02)
            orphan.execute("SELECT id FROM vods WHERE id = %s FOR UPDATE", (vod["id"],))
            done = api.wait_for(vod["id"], {"published", "failed"}, timeout=40)
            assert done["status"] == "published" or done["failure_reason"], done
            assert_nothing_pending(direct)
    finally:
        with contextlib.suppress(psycopg.Error):
            orphan.close()
        direct.close()


def test_malformed_messages_are_dropped_and_do_not_stop_the_worker(clean_faults: Stack) -> None:
    """More bad entries than the worker has slots: ids that look numeric to `str.isdigit`
    but not to int() or PostgreSQL. Each must be acknowledged once, and a real job queued
    after them must still be published."""
    stack = clean_faults
    direct = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    bad_ids = ["²", "³", "¹", "⁴", "⁵", "9" * 25, "", "-1", "1e3"]
    try:
        poison = [
            direct.xadd(QUEUE.stream, {"job_id": f"poison-{n}-{time.monotonic_ns()}", "vod_id": v})
            for n, v in enumerate(bad_ids)
        ]
        with ArchivistClient(stack.api_url, timeout=30) as api:
            retrying_503(api.login)  # set-up: a loaded box may 503 it
            vod = api.create_vod(title="after the poison")
            assert api.request("POST", f"/api/vods/{vod['id']}/process").status_code == 202
            done = api.wait_for(vod["id"], {"published", "failed"}, timeout=30)
        assert done["status"] == "published", done
        still: Any = direct.xpending_range(QUEUE.stream, QUEUE.group, min="-", max="+", count=100)
        assert not {entry["message_id"] for entry in still} & set(poison), still
    finally:
        direct.close()

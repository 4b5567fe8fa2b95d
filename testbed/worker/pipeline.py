"""One job: move a VOD uploaded -> transcoding -> captioning -> publishing -> published.

Each step is a compare-and-set on the VOD's version and job id, so a job run twice (a
reclaimed job whose first worker was only slow) cannot move a VOD twice or backwards;
a step that loses the race re-reads the row and carries on from where it really is.
Work is simulated with a bounded random sleep per stage.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from testbed.api.bounded import bounded
from testbed.api.cache import VodCache
from testbed.api.repo import COLUMNS, to_json
from testbed.api.settings import WorkerSettings
from testbed.cablecast.client import CablecastClient, CablecastError
from testbed.worker.publish import publish

log = logging.getLogger("archivist.worker")
MAX_STEPS = 20  # bounds the loop even if other writers keep bumping the version

NEXT = {"uploaded": "transcoding", "transcoding": "captioning", "captioning": "publishing"}
WORK_STAGES = {"transcoding", "captioning"}


@dataclass
class Context:
    pool: AsyncConnectionPool
    cache: VodCache
    cablecast: CablecastClient
    settings: WorkerSettings
    # Client-side bound on one database step: statement_timeout is enforced by the server,
    # so it cannot help when the link itself is black-holed.
    db_timeout_s: float = 5.0


async def _load(ctx: Context, vod_id: int, wait_for_writers: bool = False) -> dict[str, Any] | None:
    return await bounded(_load_row(ctx, vod_id, wait_for_writers), ctx.db_timeout_s)


async def _load_row(ctx: Context, vod_id: int, wait_for_writers: bool) -> dict[str, Any] | None:
    """The VOD row. The API queues a job only after committing its job id, so the row a
    worker reads names its job or a newer one, and a mismatch means truly superseded.
    `wait_for_writers` (FOR SHARE) also waits for a transaction that holds the row, so a
    writer that queues before it commits (an older API) cannot make a job look stale."""
    lock = " FOR SHARE" if wait_for_writers else ""
    async with ctx.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {COLUMNS}, job_id FROM vods WHERE id = %s{lock}", (vod_id,))
        row = await cur.fetchone()
    return to_json(row) if row else None


async def _advance(
    ctx: Context, vod: dict[str, Any], status: str, **extra: Any
) -> dict[str, Any] | None:
    """Compare-and-set the status; on a lost race returns the row as it now is."""
    row = await bounded(_update(ctx, vod, status, extra), ctx.db_timeout_s)
    if row is None:
        return await _load(ctx, vod["id"])
    fresh = to_json(row)
    public = {k: v for k, v in fresh.items() if k != "job_id"}
    try:
        await bounded(ctx.cache.store(public), ctx.db_timeout_s)
    except Exception as exc:  # the cache is an optimisation; the row is committed
        log.warning("vod %s: cache update failed: %s", vod["id"], exc)
    return fresh


async def _update(
    ctx: Context, vod: dict[str, Any], status: str, extra: dict[str, Any]
) -> dict[str, Any] | None:
    sets = "".join(f", {k} = %s" for k in extra)
    async with ctx.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"UPDATE vods SET status = %s, version = version + 1, updated_at = now(){sets}"
            f" WHERE id = %s AND version = %s AND job_id = %s RETURNING {COLUMNS}, job_id",
            (status, *extra.values(), vod["id"], vod["version"], vod["job_id"]),
        )
        row: dict[str, Any] | None = await cur.fetchone()
    return row


async def _work(ctx: Context) -> None:
    low, high = ctx.settings.stage_min_ms, max(ctx.settings.stage_min_ms, ctx.settings.stage_max_ms)
    await asyncio.sleep(random.uniform(low, high) / 1000)


async def run_job(ctx: Context, job_id: str, vod_id: int) -> str:
    """Run or resume a job; returns its outcome. Outages raise (the job stays pending)."""
    vod = await _load(ctx, vod_id, wait_for_writers=True)
    for _ in range(MAX_STEPS):
        if vod is None:
            return "vod deleted"
        if vod["job_id"] != job_id:
            return "superseded by another job"
        status = vod["status"]
        if status in ("published", "failed"):
            return status
        if status in WORK_STAGES:
            await _work(ctx)
        if status in NEXT:
            vod = await _advance(ctx, vod, NEXT[status])
            continue
        # publishing
        try:
            done = await publish(ctx.cablecast, vod, ctx.settings)
        except CablecastError as exc:
            log.warning("vod %s: publishing failed for good: %s", vod_id, exc)
            vod = await _advance(ctx, vod, "failed", failure_reason=str(exc)[:500])
            continue
        vod = await _advance(
            ctx, vod, "published", cablecast_show_id=done.show_id, cablecast_vod_id=done.vod_id
        )
    return "gave up: too many concurrent changes"


async def give_up(ctx: Context, job_id: str, vod_id: int, reason: str) -> None:
    vod = await _load(ctx, vod_id)
    if vod is not None and vod["job_id"] == job_id and vod["status"] not in ("published", "failed"):
        await _advance(ctx, vod, "failed", failure_reason=reason)

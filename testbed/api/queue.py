"""The job queue: a Redis stream read by a consumer group (acknowledged delivery)."""

from __future__ import annotations

import redis.asyncio as aioredis

from testbed.api.settings import QueueSettings


async def enqueue(client: aioredis.Redis, settings: QueueSettings, job_id: str, vod_id: int) -> str:
    entry = await client.xadd(
        settings.stream,
        {"job_id": job_id, "vod_id": str(vod_id)},
        maxlen=settings.maxlen,
        approximate=True,
    )
    return str(entry)

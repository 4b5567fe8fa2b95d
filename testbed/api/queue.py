"""The job queue: a Redis stream read by a consumer group (acknowledged delivery).

A job goes on the stream only after its row (job_id, status `uploaded`) is committed in
PostgreSQL, so a worker that reads the message always sees the row that names the job.
The price is a window where the row is committed but the XADD fails (Redis down). The
API then takes the job back (job_id cleared, 503); only if PostgreSQL fails too does the
VOD keep a job nobody queued. Rather than a sweeper for that case (one more process,
scanning the stream to tell "queued" from "lost"), `process` is repeatable: while the VOD
is `uploaded` with that job, another call queues the same job again. A per-job marker,
set in the same Lua script as the XADD (Redis runs it atomically), makes that at most
once per job: a retry queues a lost job, never a second copy of a queued one. The worker
deletes the marker when it acknowledges the job.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from testbed.api.settings import QueueSettings

MARKER_TTL_S = 7 * 24 * 3600  # bounds memory if a worker never gets to delete a marker

# KEYS[1] stream, KEYS[2] marker; ARGV: job_id, vod_id, maxlen, marker ttl.
_XADD_ONCE = """
if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[4]) then return false end
return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'job_id', ARGV[1],
                  'vod_id', ARGV[2])
"""


def marker_key(settings: QueueSettings, job_id: str) -> str:
    return f"{settings.stream}:queued:{job_id}"


async def enqueue(
    client: aioredis.Redis, settings: QueueSettings, job_id: str, vod_id: int
) -> str | None:
    """Put the job on the stream unless it is already there; returns the new entry's id,
    or None when the job was queued before. Raises on a Redis failure."""
    entry = await client.eval(
        _XADD_ONCE,
        2,
        settings.stream,
        marker_key(settings, job_id),
        job_id,
        str(vod_id),
        str(settings.maxlen),
        str(MARKER_TTL_S),
    )
    return str(entry) if entry else None

"""The stream consumer: a consumer group with acknowledgement and reclaiming.

Each slot first reclaims a job that has been idle longer than `claim_idle_ms`
(XAUTOCLAIM: its worker died), else reads a new one (XREADGROUP). While a job runs, a
heartbeat re-claims it for this consumer (XCLAIM ... JUSTID resets its idle time), so
a slow but live worker is not robbed. XACK comes only after the VOD row is committed.
An outage of Redis or PostgreSQL pauses the slot with back-off; it never exits.

Every Redis call is bounded (`bounded`: the answer comes on time even if the client is
slow to unwind). A call that outlives its bound means the client itself is wedged, not
merely the server away; that client is replaced, so the worker cannot go silent and idle
with its jobs pending after a link misbehaved.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import psycopg
import psycopg_pool
import redis.asyncio as aioredis
import redis.exceptions

from testbed.api.bounded import Overdue, bounded
from testbed.api.cache import VodCache
from testbed.api.queue import marker_key
from testbed.api.settings import QueueSettings, WorkerSettings
from testbed.worker.pipeline import Context, give_up, run_job

log = logging.getLogger("archivist.worker")
OUTAGES = (
    redis.exceptions.RedisError,
    psycopg.Error,
    psycopg_pool.PoolTimeout,
    OSError,
    TimeoutError,
)
T = TypeVar("T")
STUCK_MARGIN_S = 3.0  # beyond the client's own socket timeouts: the call is wedged


class RedisWedged(TimeoutError):
    """A Redis call outlived every timeout of the client: replace the client."""


def _is_row_id(text: str) -> bool:
    """A bigint id as the API writes it. `str.isdigit` alone also accepts "²", which int()
    rejects, and a 20-digit number that PostgreSQL rejects: either would fail on every
    delivery instead of being dropped once."""
    return text.isascii() and text.isdigit() and len(text) <= 18


@dataclass
class Consumer:
    redis: aioredis.Redis
    queue: QueueSettings
    worker: WorkerSettings
    ctx: Context
    name: str
    new_redis: Callable[[], aioredis.Redis] | None = None  # None: never replace the client
    redis_bound_s: float = 5.0  # longest a Redis call may take, blocking reads included
    _backlog: list[tuple[str, dict[str, str] | None]] = field(default_factory=list)

    async def _r(self, call: Callable[[aioredis.Redis], Awaitable[T]]) -> T:
        """One Redis call on the current client, bounded; a wedged client is replaced."""
        client = self.redis
        try:
            return await bounded(call(client), self.redis_bound_s)
        except Overdue:
            self._replace(client)
            raise RedisWedged(f"a Redis call hung for {self.redis_bound_s:g}s") from None

    def _replace(self, wedged: aioredis.Redis) -> None:
        if self.new_redis is None or self.redis is not wedged:
            return  # another slot replaced it already
        log.warning("%s: the Redis client is wedged; replacing it", self.name)
        self.redis = self.new_redis()
        self.ctx.cache = VodCache(self.redis, self.ctx.cache.ttl_s)
        closing = asyncio.ensure_future(bounded(wedged.aclose(), self.redis_bound_s))
        closing.add_done_callback(lambda done: done.cancelled() or done.exception())

    async def ensure_group(self) -> None:
        try:
            await self._r(
                lambda r: r.xgroup_create(
                    self.queue.stream, self.queue.group, id="0", mkstream=True
                )
            )
        except redis.exceptions.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        # Redis 6.2 creates a consumer lazily; make it visible (XINFO) from the start.
        await self._r(
            lambda r: r.xgroup_createconsumer(self.queue.stream, self.queue.group, self.name)
        )

    async def recover_own(self) -> None:
        """Jobs still pending under this consumer name: a previous process of the same
        name died with them. Reading id 0 returns them at once (no idle wait)."""
        read: Any = await self._r(
            lambda r: r.xreadgroup(
                self.queue.group, self.name, {self.queue.stream: "0"}, count=1000
            )
        )
        for _, messages in read or []:
            self._backlog.extend((m[0], m[1]) for m in messages)
        if self._backlog:
            log.info("%s resumes %d job(s) of its previous life", self.name, len(self._backlog))

    async def _next(self) -> list[tuple[str, dict[str, str] | None]]:
        if self._backlog:
            return [self._backlog.pop(0)]
        reclaimed: Any = await self._r(
            lambda r: r.xautoclaim(
                self.queue.stream,
                self.queue.group,
                self.name,
                min_idle_time=self.queue.claim_idle_ms,
                start_id="0-0",
                count=1,
            )
        )
        claimed = reclaimed[1] if len(reclaimed) > 1 else []
        if claimed:
            log.info("%s reclaimed %s", self.name, [m[0] for m in claimed])
            return [(m[0], m[1]) for m in claimed]
        read: Any = await self._r(
            lambda r: r.xreadgroup(
                self.queue.group,
                self.name,
                {self.queue.stream: ">"},
                count=1,
                block=self.queue.block_ms,
            )
        )
        return [(m[0], m[1]) for _, messages in read or [] for m in messages]

    async def _heartbeat(self, message_id: str, finished: asyncio.Event) -> None:
        period = self.queue.claim_idle_ms / 3000
        # Checks `finished` too: a cancellation swallowed inside the client must not leave
        # a heartbeat that keeps the job claimed (and so never reclaimed) for ever.
        while True:
            await asyncio.sleep(period)
            if finished.is_set():
                return
            with contextlib.suppress(*OUTAGES):
                await self._r(
                    lambda r: r.xclaim(
                        self.queue.stream, self.queue.group, self.name, 0, [message_id], justid=True
                    )
                )

    async def _handle(self, message_id: str, fields: dict[str, str] | None) -> None:
        if not fields or "job_id" not in fields or not _is_row_id(fields.get("vod_id", "")):
            log.warning("dropping malformed or trimmed message %s: %r", message_id, fields)
            await self._r(lambda r: r.xack(self.queue.stream, self.queue.group, message_id))
            return
        job_id, vod_id = fields["job_id"], int(fields["vod_id"])
        deliveries = await self._r(lambda r: r.hincrby("archivist:job-deliveries", job_id, 1))
        if deliveries > self.worker.max_job_deliveries:
            await give_up(self.ctx, job_id, vod_id, f"gave up after {deliveries - 1} deliveries")
            outcome = "given up"
        else:
            finished = asyncio.Event()
            beat = asyncio.create_task(self._heartbeat(message_id, finished))
            try:
                outcome = await run_job(self.ctx, job_id, vod_id)
            finally:
                finished.set()
                beat.cancel()
                await asyncio.wait({beat}, timeout=self.redis_bound_s)  # never wait for ever
        await self._r(lambda r: r.xack(self.queue.stream, self.queue.group, message_id))
        await self._r(lambda r: r.hdel("archivist:job-deliveries", job_id))
        # Done with: a VOD still `uploaded` with this job may be queued again (queue.py).
        await self._r(lambda r: r.delete(marker_key(self.queue, job_id)))
        log.info("%s job %s vod %s: %s", self.name, job_id, vod_id, outcome)

    async def slot(self, stop: asyncio.Event) -> None:
        pause = 0.1
        while not stop.is_set():
            try:
                for message_id, fields in await self._next():
                    await self._handle(message_id, fields)
                pause = 0.1
            except Exception as exc:
                if isinstance(exc, OUTAGES):
                    log.warning(
                        "%s: dependency failing (%s: %s); pausing %.1fs",
                        self.name,
                        type(exc).__name__,
                        exc,
                        pause,
                    )
                else:
                    # A slot that died here would leave its job pending and the process
                    # alive but idle: once every slot met the same job, nothing would be
                    # consumed. The job stays pending, is reclaimed, and
                    # max_job_deliveries ends it.
                    log.exception("%s: unexpected error; the job stays pending", self.name)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), pause)
                pause = min(pause * 2, self.worker.outage_backoff_max_s)

    async def run(self, stop: asyncio.Event) -> None:
        pause = 0.1
        while not stop.is_set():
            try:
                await self.ensure_group()
                await self.recover_own()
                break
            except OUTAGES as exc:
                log.warning("cannot create the consumer group yet: %s", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), pause)
                pause = min(pause * 2, self.worker.outage_backoff_max_s)
        slots: list[Any] = [self.slot(stop) for _ in range(self.worker.concurrency)]
        await asyncio.gather(*slots)

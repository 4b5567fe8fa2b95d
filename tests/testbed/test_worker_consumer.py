"""A Redis call that outlives every timeout of its client means the client is wedged: the
consumer replaces it (and the cache's) instead of letting its slots hang silently."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
import redis.asyncio as aioredis

from testbed.api.cache import VodCache
from testbed.api.settings import AppConfig
from testbed.worker.consumer import Consumer, RedisWedged
from testbed.worker.pipeline import Context

CONFIG = AppConfig.load()


def consumer(url: str) -> tuple[Consumer, list[aioredis.Redis]]:
    """A consumer, and the clients it made to replace its first."""
    client = aioredis.Redis.from_url(url)
    made: list[aioredis.Redis] = []

    def new_redis() -> aioredis.Redis:
        made.append(aioredis.Redis.from_url(url))
        return made[-1]

    ctx = Context(
        pool=cast(Any, None),  # no database step is taken here
        cache=VodCache(client, 60),
        cablecast=cast(Any, None),
        settings=CONFIG.worker,
    )
    made_by = Consumer(
        client, CONFIG.queue, CONFIG.worker, ctx, "t", new_redis=new_redis, redis_bound_s=0.2
    )
    return made_by, made


def test_a_call_that_never_returns_replaces_the_client_once() -> None:
    async def scenario() -> None:
        c, made = consumer("redis://127.0.0.1:1/0")  # never connected: the calls below hang
        wedged = c.redis

        async def hang(_: aioredis.Redis) -> None:
            await asyncio.Event().wait()

        results = await asyncio.gather(*(c._r(hang) for _ in range(4)), return_exceptions=True)
        assert all(isinstance(r, RedisWedged) for r in results), results
        assert c.redis is not wedged and made == [c.redis]  # once: the others saw it done
        assert c.ctx.cache._redis is c.redis
        assert await c._r(lambda r: asyncio.sleep(0, result="answered")) == "answered"

    asyncio.run(scenario())


def test_the_clients_own_timeout_is_an_outage_not_a_wedge() -> None:
    async def scenario() -> None:
        c, made = consumer("redis://127.0.0.1:1/0")
        first = c.redis

        async def times_out(_: aioredis.Redis) -> None:
            raise TimeoutError("Timeout reading from 127.0.0.1:1")

        with pytest.raises(TimeoutError) as caught:
            await c._r(times_out)
        assert not isinstance(caught.value, RedisWedged)
        assert c.redis is first and not made

    asyncio.run(scenario())

"""Redis: the client, and the cache-aside store of VODs and Cablecast shows.

A cached VOD is stored with its version and is only ever replaced by a newer one (a Lua
compare-and-set), so a slow reader cannot put back a copy older than what a writer just
stored; a delete leaves a tombstone that outranks every version.
"""

from __future__ import annotations

import json
from typing import Any

import redis.asyncio as aioredis
from redis.maint_notifications import MaintNotificationsConfig

from testbed.api.settings import RedisSettings

TOMBSTONE_VERSION = 2**62

# KEYS[1] key; ARGV: version, payload, ttl. Store only if absent or older than version.
_SET_IF_NEWER = """
local cur = redis.call('GET', KEYS[1])
if cur then
  local v = tonumber(string.match(cur, '^(%d+)|'))
  if v and v >= tonumber(ARGV[1]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. ARGV[2], 'EX', ARGV[3])
return 1
"""


def make_redis(url: str, settings: RedisSettings) -> aioredis.Redis:
    return aioredis.Redis.from_url(
        url,
        socket_timeout=settings.socket_timeout_s,
        socket_connect_timeout=settings.socket_connect_timeout_s,
        max_connections=settings.max_connections,
        health_check_interval=10,
        retry_on_timeout=False,
        decode_responses=True,
        # The pool replaces a connection the server closed while it sat idle, but
        # redis-py 8 skips that check while maintenance notifications (a Redis Enterprise
        # feature) are "auto", its default: after any outage, each stale connection then
        # answered one request with a 503.
        maint_notifications_config=MaintNotificationsConfig(enabled=False),
    )


def vod_key(vod_id: int) -> str:
    return f"archivist:vod:{vod_id}"


class VodCache:
    def __init__(self, client: aioredis.Redis, ttl_s: int) -> None:
        self._redis = client
        self.ttl_s = ttl_s
        self._script = client.register_script(_SET_IF_NEWER)

    async def get(self, vod_id: int) -> dict[str, Any] | bool | None:
        """The cached VOD, None on a miss, False when it is known to be deleted."""
        raw = await self._redis.get(vod_key(vod_id))
        if raw is None:
            return None
        version, _, payload = str(raw).partition("|")
        if int(version) >= TOMBSTONE_VERSION:
            return False
        value: dict[str, Any] = json.loads(payload)
        return value

    async def store(self, vod: dict[str, Any]) -> None:
        await self._script(
            keys=[vod_key(vod["id"])], args=[vod["version"], json.dumps(vod), self.ttl_s]
        )

    async def forget(self, vod_id: int) -> None:
        await self._script(keys=[vod_key(vod_id)], args=[TOMBSTONE_VERSION, "", self.ttl_s])


class ShowCache:
    def __init__(self, client: aioredis.Redis, ttl_s: int) -> None:
        self._redis = client
        self.ttl_s = ttl_s

    async def get(self, query: str) -> list[dict[str, Any]] | None:
        raw = await self._redis.get(f"archivist:shows:{query}")
        return None if raw is None else json.loads(raw)

    async def put(self, query: str, shows: list[dict[str, Any]]) -> None:
        await self._redis.set(f"archivist:shows:{query}", json.dumps(shows), ex=self.ttl_s)

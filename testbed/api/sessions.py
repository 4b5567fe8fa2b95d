"""Sessions and refresh tokens in Redis with a TTL, and the failed-login lock-out.

Tokens are random strings; Redis holds what they mean. Logout and refresh delete keys,
so a revoked token is simply unknown (401). The lock-out counts failures per user in a
window that starts at the first failure.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from testbed.api.settings import AuthSettings


@dataclass(frozen=True)
class Session:
    username: str
    role: str
    access_token: str
    refresh_token: str


class Sessions:
    def __init__(self, client: aioredis.Redis, settings: AuthSettings) -> None:
        self._redis = client
        self._s = settings

    async def open(self, username: str, role: str) -> dict[str, Any]:
        access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        data = json.dumps(
            {"username": username, "role": role, "access": access, "refresh": refresh}
        )
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(f"archivist:session:{access}", data, ex=self._s.access_ttl_s)
            pipe.set(f"archivist:refresh:{refresh}", data, ex=self._s.refresh_ttl_s)
            await pipe.execute()
        return {
            "access_token": access,
            "refresh_token": refresh,
            "token_type": "bearer",
            "expires_in": self._s.access_ttl_s,
        }

    async def lookup(self, access_token: str) -> Session | None:
        raw = await self._redis.get(f"archivist:session:{access_token}")
        if raw is None:
            return None
        d = json.loads(raw)
        return Session(d["username"], d["role"], d["access"], d["refresh"])

    async def refresh(self, refresh_token: str) -> dict[str, Any] | None:
        """Swap a refresh token for a new pair; GETDEL makes the old one single-use."""
        raw = await self._redis.getdel(f"archivist:refresh:{refresh_token}")
        if raw is None:
            return None
        d = json.loads(raw)
        await self._redis.delete(f"archivist:session:{d['access']}")
        return await self.open(d["username"], d["role"])

    async def close(self, session: Session) -> None:
        await self._redis.delete(
            f"archivist:session:{session.access_token}",
            f"archivist:refresh:{session.refresh_token}",
        )

    async def locked_out(self, username: str) -> bool:
        count = await self._redis.get(f"archivist:failed-logins:{username}")
        return count is not None and int(count) >= self._s.max_failed_logins

    async def failed_login(self, username: str) -> None:
        key = f"archivist:failed-logins:{username}"
        async with self._redis.pipeline(transaction=True) as pipe:
            # SET NX starts the window at the first failure (EXPIRE NX needs Redis 7).
            pipe.set(key, 0, ex=self._s.lockout_window_s, nx=True)
            pipe.incr(key)
            await pipe.execute()

    async def succeeded(self, username: str) -> None:
        await self._redis.delete(f"archivist:failed-logins:{username}")

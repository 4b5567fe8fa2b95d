"""The long-lived clients a request needs, built once at start-up and closed at shutdown."""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis
from psycopg_pool import AsyncConnectionPool
from starlette.requests import Request

from testbed.api.cache import ShowCache, VodCache
from testbed.api.errors import ApiError
from testbed.api.sessions import Session, Sessions
from testbed.api.settings import AppConfig, Endpoints
from testbed.cablecast.client import CablecastClient


@dataclass
class Deps:
    config: AppConfig
    endpoints: Endpoints
    pool: AsyncConnectionPool
    redis: aioredis.Redis
    cablecast: CablecastClient
    sessions: Sessions
    vods: VodCache
    shows: ShowCache

    @property
    def cache_reads(self) -> bool:
        return self.endpoints.regression != "no-cache"


def deps(request: Request) -> Deps:
    value: Deps = request.app.state.deps
    return value


async def authenticate(request: Request) -> Session:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "missing bearer token (Authorization: Bearer <access_token>)")
    session = await deps(request).sessions.lookup(token.strip())
    if session is None:
        raise ApiError(401, "token is invalid, expired or revoked")
    return session

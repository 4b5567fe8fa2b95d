"""Builds the ASGI app: routes, error handlers, the request deadline and the lifespan
that connects the pool, Redis and Cablecast, migrates and seeds users."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from testbed.api import db
from testbed.api.bounded import bounded
from testbed.api.cache import ShowCache, VodCache, make_redis
from testbed.api.deps import Deps
from testbed.api.errors import error_response, handlers
from testbed.api.routes import auth, health, shows, vods
from testbed.api.sessions import Sessions
from testbed.api.settings import AppConfig, Endpoints
from testbed.cablecast.client import CablecastClient

log = logging.getLogger("archivist.api")

ROUTES = [
    Route("/api/auth/login", auth.login, methods=["POST"]),
    Route("/api/auth/refresh", auth.refresh, methods=["POST"]),
    Route("/api/auth/me", auth.me, methods=["GET"]),
    Route("/api/auth/logout", auth.logout, methods=["POST"]),
    Route("/api/vods", vods.list_vods, methods=["GET"]),
    Route("/api/vods", vods.create_vod, methods=["POST"]),
    Route("/api/vods/{id}", vods.get_vod, methods=["GET"]),
    Route("/api/vods/{id}", vods.patch_vod, methods=["PATCH"]),
    Route("/api/vods/{id}", vods.delete_vod, methods=["DELETE"]),
    Route("/api/vods/{id}/process", vods.process_vod, methods=["POST"]),
    Route("/api/shows", shows.list_shows, methods=["GET"]),
    Route("/api/health", health.health, methods=["GET"]),
]


class Deadline:
    """Answers 503 when a request outlives `request_timeout_s`, whatever it waits on."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app, self.seconds = app, seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = expired = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if expired:
                return  # we already answered 503; the late work is being cancelled
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await bounded(self.app(scope, receive, tracking_send), self.seconds)
        except TimeoutError:
            expired = True
            log.warning(
                "%s %s: over the %.1fs deadline", scope["method"], scope["path"], self.seconds
            )
            if not started:
                response = error_response(
                    503, "unavailable", f"request took over {self.seconds:g}s; retry later"
                )
                await response(scope, receive, send)


def create_app(config: AppConfig, endpoints: Endpoints) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        applied = await db.migrate_with_deadline(endpoints.database_url, config.database)
        if applied:
            log.info("applied migrations %s", applied)
        pool = db.make_pool(endpoints.database_url, config.database, "archivist-api")
        await pool.open(wait=True, timeout=config.database.migrate_deadline_s)
        client = make_redis(endpoints.redis_url, config.redis)
        cablecast = CablecastClient(endpoints.cablecast_url, config.cablecast)
        try:
            added = await db.seed_users(pool, config.users, config.auth.scrypt_n)
            if added:
                log.info("seeded %d users", added)
            app.state.deps = Deps(
                config=config,
                endpoints=endpoints,
                pool=pool,
                redis=client,
                cablecast=cablecast,
                sessions=Sessions(client, config.auth),
                vods=VodCache(client, config.cache.vod_ttl_s),
                shows=ShowCache(client, config.cache.shows_ttl_s),
            )
            yield
        finally:
            await cablecast.aclose()
            await client.aclose()
            await pool.close()

    app = Starlette(routes=ROUTES, exception_handlers=handlers(), lifespan=lifespan)
    app.add_middleware(Deadline, seconds=config.api.request_timeout_s)
    return app

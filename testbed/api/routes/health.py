"""`GET /api/health`: each dependency checked with its own short timeout, in parallel."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from testbed.api.bounded import bounded
from testbed.api.deps import Deps, deps


async def _timed(probe: Callable[[], Coroutine[Any, Any, Any]], timeout: float) -> dict[str, Any]:
    start = time.perf_counter()
    try:
        await bounded(probe(), timeout)
        result: dict[str, Any] = {"ok": True}
    except Exception as exc:  # any failure of a probe is the answer, not an error
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    result["latency_ms"] = round((time.perf_counter() - start) * 1000, 2)
    return result


async def _database(d: Deps) -> None:
    async with d.pool.connection() as conn:
        await conn.execute("SELECT 1")


async def _redis(d: Deps) -> None:
    await d.redis.ping()


async def health(request: Request) -> Response:
    d = deps(request)
    limit = d.config.api.health_check_timeout_s
    database, redis_, cablecast = await asyncio.gather(
        _timed(lambda: _database(d), limit),
        _timed(lambda: _redis(d), limit),
        _timed(d.cablecast.system_info, limit),
    )
    checks = {"database": database, "redis": redis_, "cablecast": cablecast}
    ok = all(c["ok"] for c in checks.values())
    body = {
        "status": "ok" if ok else "failing",
        "checks": checks,
        "regression": d.endpoints.regression,
    }
    return JSONResponse(body, status_code=200 if ok else 503)

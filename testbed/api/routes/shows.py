"""`GET /api/shows?q=`: Cablecast shows, cached in Redis for a short TTL."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from testbed.api.deps import authenticate, deps
from testbed.api.errors import ApiError


async def list_shows(request: Request) -> Response:
    await authenticate(request)
    d = deps(request)
    q = request.query_params.get("q", "")
    if len(q) > 200:
        raise ApiError(422, "q: at most 200 characters", [{"field": "q"}])
    shows = await d.shows.get(q) if d.cache_reads else None
    source = "cache"
    if shows is None:
        shows, source = await d.cablecast.search_shows(q), "cablecast"
        if d.cache_reads:
            await d.shows.put(q, shows)
    return JSONResponse({"items": shows, "count": len(shows)}, headers={"X-Source": source})

"""VOD routes: list, create (idempotent), read (cache-aside), update (If-Match), delete,
and queue processing."""

from __future__ import annotations

import contextlib
import uuid

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from testbed.api import repo
from testbed.api.deps import authenticate, deps
from testbed.api.errors import ApiError
from testbed.api.queue import enqueue
from testbed.api.validation import (
    if_match,
    int_query,
    path_id,
    read_object,
    status_query,
    vod_create,
    vod_patch,
)

MAX_KEY_LEN = 200


async def list_vods(request: Request) -> Response:
    await authenticate(request)
    d = deps(request)
    limit = int_query(request, "limit", 20, 1, 100)
    status = status_query(request)
    cursor = request.query_params.get("cursor") or None
    after = None
    if cursor is not None and (after := repo.decode_cursor(cursor)) is None:
        raise ApiError(
            422, f"cursor: {cursor!r} is not a cursor from next_cursor", [{"field": "cursor"}]
        )
    q = request.query_params.get("q") or None
    if q is not None and len(q) > 200:
        raise ApiError(422, "q: at most 200 characters", [{"field": "q"}])
    items, last = await repo.page(
        d.pool, limit, after, status, q, slow=d.endpoints.regression == "slow-list"
    )
    next_cursor = repo.encode_cursor(last) if last is not None else None
    return JSONResponse({"items": items, "next_cursor": next_cursor})


async def create_vod(request: Request) -> Response:
    session = await authenticate(request)
    d = deps(request)
    key = request.headers.get("idempotency-key")
    if key is not None and not 1 <= len(key.strip()) <= MAX_KEY_LEN:
        raise ApiError(
            422, f"Idempotency-Key: 1 to {MAX_KEY_LEN} characters", [{"field": "Idempotency-Key"}]
        )
    fields = vod_create(await read_object(request, d.config.api.max_body_bytes))
    vod, created = await repo.create(d.pool, fields, key.strip() if key else None, session.username)
    if created:
        return JSONResponse(vod, status_code=201)
    if vod["id"] is None:
        raise ApiError(409, "Idempotency-Key belongs to a VOD that was deleted")
    if vod.pop("request_hash") != repo.request_hash(fields):
        raise ApiError(409, "Idempotency-Key was already used with a different body")
    return JSONResponse(vod, status_code=200)


async def get_vod(request: Request) -> Response:
    await authenticate(request)
    d = deps(request)
    vod_id = path_id(request)
    if d.cache_reads:
        cached = await d.vods.get(vod_id)
        if cached is False:
            raise ApiError(404, f"no VOD with id {vod_id}")
        if cached:
            return JSONResponse(cached, headers={"X-Cache": "hit"})
    vod = await repo.get(d.pool, vod_id)
    if vod is None:
        raise ApiError(404, f"no VOD with id {vod_id}")
    if d.cache_reads:
        await d.vods.store(vod)
    return JSONResponse(vod, headers={"X-Cache": "miss"})


async def patch_vod(request: Request) -> Response:
    await authenticate(request)
    d = deps(request)
    vod_id = path_id(request)
    expected = if_match(request)
    changes = vod_patch(await read_object(request, d.config.api.max_body_bytes))
    updated, current = await repo.update(d.pool, vod_id, changes, expected)
    if updated is None:
        if current is None:
            raise ApiError(404, f"no VOD with id {vod_id}")
        raise ApiError(
            409,
            f"version mismatch: If-Match {expected} but the VOD is at version {current['version']}",
            [{"current_version": current["version"]}],
        )
    await d.vods.store(updated)
    return JSONResponse(updated)


async def delete_vod(request: Request) -> Response:
    await authenticate(request)
    d = deps(request)
    vod_id = path_id(request)
    if not await repo.delete(d.pool, vod_id):
        raise ApiError(404, f"no VOD with id {vod_id}")
    await d.vods.forget(vod_id)
    return Response(status_code=204)


async def process_vod(request: Request) -> Response:
    await authenticate(request)
    d = deps(request)
    vod_id = path_id(request)
    vod, job, outcome = await repo.start_job(d.pool, vod_id, uuid.uuid4().hex)
    if outcome == "missing" or vod is None:
        raise ApiError(404, f"no VOD with id {vod_id}")
    if outcome == "published":
        raise ApiError(409, f"VOD {vod_id} is already published")
    if job is not None and vod["status"] == "uploaded":
        # Queued only after the commit (see queue.py). When Redis fails here the job is
        # taken back and the answer is a 503; should that fail too (both stores down), the
        # VOD keeps its job, and the next `process` call queues it.
        try:
            await enqueue(d.redis, d.config.queue, job, vod_id)
        except Exception:
            with contextlib.suppress(Exception):
                if (taken_back := await repo.abandon_job(d.pool, vod_id, job)) is not None:
                    await d.vods.store(taken_back)
            raise
    if outcome == "queued":
        await d.vods.store(vod)
    return JSONResponse({"job_id": job, "status": vod["status"]}, status_code=202)

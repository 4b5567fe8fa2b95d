"""Login, refresh, me and logout; sessions live in Redis (see sessions.py)."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from testbed.api.deps import authenticate, deps
from testbed.api.errors import ApiError
from testbed.api.passwords import verify_password
from testbed.api.validation import read_object


def _strings(body: dict[str, object], *names: str) -> list[str]:
    problems = [f"{n}: is required" for n in names if n not in body]
    problems += [
        f"{n}: must be a non-empty string"
        for n in names
        if n in body and (not isinstance(body[n], str) or not body[n])
    ]
    if problems:
        raise ApiError(
            422,
            "; ".join(problems),
            [{"field": p.split(":")[0], "message": p.split(": ", 1)[1]} for p in problems],
        )
    return [str(body[n]) for n in names]


async def login(request: Request) -> Response:
    d = deps(request)
    username, password = _strings(
        await read_object(request, d.config.api.max_body_bytes), "username", "password"
    )
    if await d.sessions.locked_out(username):
        raise ApiError(
            429,
            f"too many failed logins for {username!r}; "
            f"wait up to {d.config.auth.lockout_window_s}s",
        )
    async with d.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT password_hash, role FROM users WHERE username = %s", (username,)
        )
        row = await cur.fetchone()
    ok = row is not None and await asyncio.to_thread(verify_password, password, row[0])
    if not ok or row is None:
        await d.sessions.failed_login(username)
        raise ApiError(401, "wrong username or password")
    await d.sessions.succeeded(username)
    return JSONResponse(await d.sessions.open(username, row[1]))


async def refresh(request: Request) -> Response:
    d = deps(request)
    (token,) = _strings(await read_object(request, d.config.api.max_body_bytes), "refresh_token")
    pair = await d.sessions.refresh(token)
    if pair is None:
        raise ApiError(401, "refresh token is invalid, expired or already used")
    return JSONResponse(pair)


async def me(request: Request) -> Response:
    session = await authenticate(request)
    return JSONResponse({"username": session.username, "role": session.role})


async def logout(request: Request) -> Response:
    session = await authenticate(request)
    await deps(request).sessions.close(session)
    return Response(status_code=204)

"""One error shape for every failure: `{"error": {"code", "message", "details"}}`.

Handlers map Starlette's own 404/405, our `ApiError`, and dependency failures
(PostgreSQL, Redis, Cablecast, timeouts) to the contract's codes; a dependency failure is
a 503 `unavailable`, never a 500 and never a hang.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
import psycopg_pool
import redis.exceptions
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from testbed.cablecast.client import CablecastError

log = logging.getLogger("archivist.api")

CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    422: "validation_error",
    429: "rate_limited",
    503: "unavailable",
}


class ApiError(Exception):
    def __init__(
        self, status: int, message: str, details: list[Any] | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or CODES.get(status, "error")
        self.message = message
        self.details = details or []


def error_response(
    status: int, code: str, message: str, details: list[Any] | None = None
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "details": details or []}}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, headers=headers)


async def api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, exc.details)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    message = {404: f"no route {request.url.path}", 405: f"{request.method} not allowed here"}
    return error_response(status, CODES.get(status, "error"), message.get(status, str(exc.detail)))


def _dependency(exc: BaseException) -> str:
    if isinstance(exc, psycopg.Error | psycopg_pool.PoolTimeout):
        return "database"
    if isinstance(exc, redis.exceptions.RedisError):
        return "redis"
    if isinstance(exc, CablecastError):
        return "cablecast"
    return "a dependency"


async def unavailable(request: Request, exc: Exception) -> Response:
    which = _dependency(exc)
    log.warning("%s %s: %s unavailable: %s", request.method, request.url.path, which, exc)
    return error_response(
        503, "unavailable", f"{which} is unavailable, retry later", [{"dependency": which}]
    )


async def unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(500, "internal_error", "unexpected error; this is a bug")


def handlers() -> dict[Any, Any]:
    return {
        ApiError: api_error,
        HTTPException: http_error,
        psycopg.OperationalError: unavailable,
        psycopg.errors.QueryCanceled: unavailable,
        psycopg.InterfaceError: unavailable,
        psycopg_pool.PoolTimeout: unavailable,
        redis.exceptions.ConnectionError: unavailable,
        redis.exceptions.TimeoutError: unavailable,
        redis.exceptions.BusyLoadingError: unavailable,
        CablecastError: unavailable,
        TimeoutError: unavailable,
        Exception: unexpected,
    }

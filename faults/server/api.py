"""The HTTP control plane: Toxiproxy's REST API, status codes and messages, on Starlette."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from faults.server import model
from faults.server.collection import Collection
from faults.server.errors import ApiError
from faults.server.metrics import make_registry, render

VERSION = "2.12.0"
MAX_BODY = 1 << 20

Handler = Callable[[Request], Awaitable[Response]]


def json_response(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status_code=status, media_type="application/json")


def error_response(status: int, message: str) -> Response:
    return json_response({"error": message, "status": status}, status)


async def read_json(request: Request) -> Any:
    raw = b""
    async for part in request.stream():
        raw += part
        if len(raw) > MAX_BODY:
            raise ApiError(400, f"bad request body: larger than {MAX_BODY} bytes")
    return model.parse_json(raw)


def build_app(collection: Collection) -> ASGIApp:
    registry = make_registry(collection)

    def handler(fn: Handler) -> Handler:
        async def wrapped(request: Request) -> Response:
            try:
                return await fn(request)
            except ApiError as exc:
                return error_response(exc.status, exc.message)

        return wrapped

    def name(request: Request, key: str = "proxy") -> str:
        return str(request.path_params[key])

    async def list_proxies(request: Request) -> Response:
        return json_response({n: p.to_json() for n, p in collection.proxies.items()})

    async def create_proxy(request: Request) -> Response:
        spec = model.proxy_spec(await read_json(request))
        return json_response((await collection.create(spec)).to_json(), 201)

    async def populate(request: Request) -> Response:
        specs = model.proxy_specs(await read_json(request))
        proxies = await collection.populate(specs)
        return json_response({"proxies": [p.to_json() for p in proxies]}, 201)

    async def get_proxy(request: Request) -> Response:
        return json_response(collection.get(name(request)).to_json())

    async def update_proxy(request: Request) -> Response:
        collection.get(name(request))
        patch = model.proxy_patch(await read_json(request))
        return json_response((await collection.update(name(request), patch)).to_json())

    async def delete_proxy(request: Request) -> Response:
        await collection.delete(name(request))
        return Response(status_code=204)

    async def list_toxics(request: Request) -> Response:
        return json_response(collection.get(name(request)).toxics_json())

    async def create_toxic(request: Request) -> Response:
        collection.get(name(request))
        entry = model.toxic_entry(await read_json(request))
        return json_response(collection.add_toxic(name(request), entry).to_json())

    async def get_toxic(request: Request) -> Response:
        return json_response(collection.toxic(name(request), name(request, "toxic")).to_json())

    async def update_toxic(request: Request) -> Response:
        entry = collection.toxic(name(request), name(request, "toxic"))
        updated = model.toxic_update(await read_json(request), entry)
        return json_response(collection.replace_toxic(name(request), updated).to_json())

    async def delete_toxic(request: Request) -> Response:
        collection.remove_toxic(name(request), name(request, "toxic"))
        return Response(status_code=204)

    async def reset(request: Request) -> Response:
        await collection.reset()
        return Response(status_code=204)

    async def version(request: Request) -> Response:
        return Response(json.dumps({"version": VERSION}) + "\n", media_type="application/json")

    async def metrics(request: Request) -> Response:
        return Response(render(registry), media_type=CONTENT_TYPE_LATEST)

    routes = [
        Route("/proxies", handler(list_proxies), methods=["GET"]),
        Route("/proxies", handler(create_proxy), methods=["POST"]),
        Route("/populate", handler(populate), methods=["POST"]),
        Route("/reset", handler(reset), methods=["POST"]),
        Route("/version", handler(version), methods=["GET"]),
        Route("/metrics", handler(metrics), methods=["GET"]),
        Route("/proxies/{proxy}", handler(get_proxy), methods=["GET"]),
        Route("/proxies/{proxy}", handler(update_proxy), methods=["POST", "PATCH"]),
        Route("/proxies/{proxy}", handler(delete_proxy), methods=["DELETE"]),
        Route("/proxies/{proxy}/toxics", handler(list_toxics), methods=["GET"]),
        Route("/proxies/{proxy}/toxics", handler(create_toxic), methods=["POST"]),
        Route("/proxies/{proxy}/toxics/{toxic}", handler(get_toxic), methods=["GET"]),
        Route("/proxies/{proxy}/toxics/{toxic}", handler(update_toxic), methods=["POST", "PATCH"]),
        Route("/proxies/{proxy}/toxics/{toxic}", handler(delete_toxic), methods=["DELETE"]),
    ]

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 405:
            return Response(status_code=405, headers=exc.headers)  # Toxiproxy: empty body
        if exc.status_code == 404:
            return PlainTextResponse("404 page not found\n", status_code=404)
        return PlainTextResponse(exc.detail, status_code=exc.status_code)

    async def internal_error(request: Request, exc: Exception) -> Response:
        return error_response(500, f"internal error: {type(exc).__name__}")

    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: http_error, Exception: internal_error},
    )
    app.router.redirect_slashes = False
    return BrowserGuard(app)


class BrowserGuard:
    """403 for browsers: a page must not drive the fault server (Toxiproxy's CSRF guard)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = dict(scope.get("headers", []))
            if headers.get(b"user-agent", b"").startswith(b"Mozilla/"):
                response = PlainTextResponse("User agent not allowed\n", status_code=403)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

"""The Cablecast simulator's HTTP API: a subset of CablecastAPI v1 with its conventions.

Singular roots for one object (`{"show": {...}}`), plural roots plus `meta` for lists,
`offset`/`page_size` paging, integer foreign keys, basic auth on writes, and the base
path matched in any case. `/_audit/received` is ours, not the vendor's: it lists what
the simulator was sent so a test can prove each published VOD arrived exactly once.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from testbed.api.settings import AppConfig
from testbed.cablecast.store import (
    CHANNELS,
    LOCATIONS,
    QUALITIES,
    VOD_CONFIGURATIONS,
    Page,
    Store,
)

BASE = "/cablecastapi/v1"
MAX_PAGE_SIZE = 500


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise BadRequest(400, f"{name} must be an integer, got {raw!r}") from exc
    if not low <= value <= high:
        raise BadRequest(400, f"{name} must be between {low} and {high}, got {value}")
    return value


def _paging(request: Request) -> tuple[int, int]:
    offset = _int_param(request, "offset", 0, 0, 10**9)
    page_size = _int_param(request, "page_size", 50, 1, MAX_PAGE_SIZE)
    return offset, page_size


async def _singular(request: Request, root: str) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except ValueError as exc:
        raise BadRequest(400, "body is not valid JSON") from exc
    inner = body.get(root) if isinstance(body, dict) else None
    if not isinstance(inner, dict):
        raise BadRequest(400, f'body must be {{"{root}": {{...}}}}')
    return inner


def _row_id(request: Request) -> int:
    value = int(request.path_params["id"])
    if value >= 2**63:  # beyond SQLite's integers: cannot exist
        raise BadRequest(404, "not found")
    return value


def _static(root: str, items: list[dict[str, Any]]) -> Any:
    async def handler(request: Request) -> Response:
        offset, page_size = _paging(request)
        page = Page(items[offset : offset + page_size], offset, page_size, len(items))
        return JSONResponse(page.envelope(root))

    return handler


def build_app(store: Store, config: AppConfig) -> ASGIApp:
    creds = config.cablecast
    expected = "Basic " + base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()

    def _authorised(request: Request) -> bool:
        given = request.headers.get("authorization", "")
        try:
            return given.split(" ", 1)[0].lower() == "basic" and base64.b64decode(
                given.split(" ", 1)[1], validate=True
            ) == base64.b64decode(expected.split(" ", 1)[1])
        except (IndexError, binascii.Error):
            return False

    async def shows(request: Request) -> Response:
        if request.method == "POST":
            show = await _singular(request, "show")
            title = show.get("title")
            if not isinstance(title, str) or not title.strip():
                raise BadRequest(400, "show.title is required")
            location = show.get("location", config.cablecast.location_id)
            if not isinstance(location, int) or location not in {x["id"] for x in LOCATIONS}:
                raise BadRequest(400, f"show.location {location!r} is not a location id")
            created = store.create_show(
                title=title,
                cg_title=str(show.get("cgTitle") or title),
                comments=str(show.get("comments") or ""),
                location=location,
                event_date=show.get("eventDate"),
            )
            return JSONResponse({"show": created})
        offset, page_size = _paging(request)
        page = store.search_shows(request.query_params.get("search", ""), offset, page_size)
        return JSONResponse(page.envelope("shows"))

    async def show(request: Request) -> Response:
        found = store.get_show(_row_id(request))
        if found is None:
            raise BadRequest(404, "show not found")
        return JSONResponse({"show": found})

    async def vods(request: Request) -> Response:
        if request.method == "POST":
            vod = await _singular(request, "vod")
            show_id, config_id = vod.get("show"), vod.get("vodConfiguration")
            if not isinstance(show_id, int) or store.get_show(show_id) is None:
                raise BadRequest(400, f"vod.show {show_id!r} is not a show id")
            if not isinstance(config_id, int) or config_id not in {
                x["id"] for x in VOD_CONFIGURATIONS
            }:
                raise BadRequest(400, f"vod.vodConfiguration {config_id!r} is not known")
            return JSONResponse({"vod": store.create_vod(show_id, config_id)})
        offset, page_size = _paging(request)
        return JSONResponse(store.list_vods(offset, page_size).envelope("vods"))

    async def vod(request: Request) -> Response:
        found = store.get_vod(_row_id(request))
        if found is None:
            raise BadRequest(404, "vod not found")
        return JSONResponse({"vod": found})

    async def chapters(request: Request) -> Response:
        """A VOD's chapters (what the real Archivist's client reads and writes)."""
        vod_id = _row_id(request)
        if store.get_vod(vod_id) is None:
            raise BadRequest(404, "vod not found")
        if request.method == "POST":
            chapter = await _singular(request, "chapter")
            title, start = chapter.get("title"), chapter.get("startTime", 0)
            if not isinstance(title, str) or not title.strip():
                raise BadRequest(400, "chapter.title is required")
            if not isinstance(start, int) or isinstance(start, bool) or start < 0:
                raise BadRequest(400, f"chapter.startTime {start!r} must be seconds >= 0")
            extra = {
                k: v for k, v in chapter.items() if k not in ("id", "vod", "title", "startTime")
            }
            return JSONResponse({"chapter": store.create_chapter(vod_id, title, start, extra)})
        offset, page_size = _paging(request)
        return JSONResponse(store.list_chapters(vod_id, offset, page_size).envelope("chapters"))

    async def systeminfo(request: Request) -> Response:
        return JSONResponse(
            {"systemInfo": {"version": config.simulator.version, "simulated": True}}
        )

    async def audit(request: Request) -> Response:
        offset = _int_param(request, "offset", 0, 0, 10**9)
        limit = _int_param(request, "limit", 1000, 1, 100_000)
        page = store.received(request.query_params.get("method"), offset, limit)
        return JSONResponse(page.envelope("received"))

    routes = [
        Route(f"{BASE}/shows", shows, methods=["GET", "POST"]),
        Route(f"{BASE}/shows/{{id:int}}", show, methods=["GET"]),
        Route(f"{BASE}/vods", vods, methods=["GET", "POST"]),
        Route(f"{BASE}/vods/{{id:int}}", vod, methods=["GET"]),
        Route(f"{BASE}/vods/{{id:int}}/chapters", chapters, methods=["GET", "POST"]),
        Route(f"{BASE}/locations", _static("locations", LOCATIONS), methods=["GET"]),
        Route(f"{BASE}/qualities", _static("qualities", QUALITIES), methods=["GET"]),
        Route(f"{BASE}/channels", _static("channels", CHANNELS), methods=["GET"]),
        Route(
            f"{BASE}/vodconfigurations",
            _static("vodConfigurations", VOD_CONFIGURATIONS),
            methods=["GET"],
        ),
        Route(f"{BASE}/systeminfo", systeminfo, methods=["GET"]),
        Route(f"{BASE}/_audit/received", audit, methods=["GET"]),
    ]

    async def bad_request(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, BadRequest)
        return JSONResponse({"message": exc.message}, status_code=exc.status)

    async def http_error(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 500)
        return JSONResponse({"message": getattr(exc, "detail", "error")}, status_code=status)

    app = Starlette(
        routes=routes,
        exception_handlers={BadRequest: bad_request, 404: http_error, 405: http_error},
    )

    async def gate(request: Request) -> Response | None:
        if request.method in {"POST", "PUT", "PATCH", "DELETE"} and not _authorised(request):
            return JSONResponse(
                {"message": "authentication required"},
                status_code=401,
                headers={"WWW-Authenticate": 'Basic realm="Cablecast"'},
            )
        return None

    return _Recorder(app, store, gate)


class _Recorder:
    """Case-folds the base path, enforces basic auth on writes and records each request."""

    def __init__(self, app: Starlette, store: Store, gate: Any) -> None:
        self.app, self.store, self.gate = app, store, gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.lower().startswith(BASE):
            scope = dict(scope, path=path.lower())
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)

        async def replay() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        status = {"code": 500}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        request = Request(scope, replay)
        audit = scope["path"].startswith(f"{BASE}/_audit")
        denied = await self.gate(request)
        if denied is not None:
            await denied(scope, replay, capture)
        else:
            await self.app(scope, replay, capture)
        if not audit:
            query = scope.get("query_string", b"").decode("latin-1")
            self.store.record(scope["method"], scope["path"], query, status["code"], body or None)

"""The Cablecast client shared by the API (show search, health) and the worker (publish).

An `httpx.AsyncClient` with a hard timeout, basic auth, and the vendor's envelopes
unwrapped. Errors become `CablecastError` with `retryable` set, so the worker's back-off
retries outages and 5xx but gives up at once on a 4xx that no retry can fix.
"""

from __future__ import annotations

from typing import Any

import httpx

from testbed.api.settings import CablecastSettings


class CablecastError(Exception):
    def __init__(self, message: str, *, retryable: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status


class CablecastClient:
    def __init__(self, base_url: str, settings: CablecastSettings) -> None:
        self.settings = settings
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            auth=(settings.username, settings.password),
            timeout=httpx.Timeout(settings.timeout_s),
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        try:
            response = await self._http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise CablecastError(
                f"Cablecast {method} {path} failed: {type(exc).__name__}: {exc}", retryable=True
            ) from exc
        if response.status_code >= 400:
            raise CablecastError(
                f"Cablecast {method} {path} answered {response.status_code}: {response.text[:200]}",
                retryable=response.status_code >= 500 or response.status_code == 429,
                status=response.status_code,
            )
        try:
            body = response.json()
        except ValueError as exc:
            raise CablecastError(
                f"Cablecast {method} {path} answered non-JSON", retryable=True
            ) from exc
        if not isinstance(body, dict):
            raise CablecastError(f"Cablecast {method} {path}: not an object", retryable=False)
        return body

    async def system_info(self) -> dict[str, Any]:
        return (await self._call("GET", "/systeminfo")).get("systemInfo", {})

    async def search_shows(self, search: str, page_size: int = 50) -> list[dict[str, Any]]:
        body = await self._call(
            "GET", "/shows", params={"search": search, "page_size": page_size, "offset": 0}
        )
        shows = body.get("shows", [])
        return shows if isinstance(shows, list) else []

    async def create_show(self, title: str, comments: str, event_date: str) -> dict[str, Any]:
        show = {
            "title": title,
            "cgTitle": title,
            "comments": comments,
            "location": self.settings.location_id,
            "eventDate": event_date,
        }
        return (await self._call("POST", "/shows", json={"show": show}))["show"]

    async def create_vod(self, show_id: int) -> dict[str, Any]:
        vod = {"show": show_id, "vodConfiguration": self.settings.vod_configuration_id}
        return (await self._call("POST", "/vods", json={"vod": vod}))["vod"]

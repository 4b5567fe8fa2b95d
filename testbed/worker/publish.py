"""Publishing one VOD to Cablecast, idempotently, with exponential back-off (tenacity).

Idempotent across crashes: the show carries a marker `[archivist-vod:<id>]` in its
comments, and every attempt first searches for it. A worker that died after creating the
show or the Cablecast VOD (or whose response was lost) finds them on the retry and does
not create a second one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from testbed.api.settings import WorkerSettings
from testbed.cablecast.client import CablecastClient, CablecastError


@dataclass(frozen=True)
class Published:
    show_id: int
    vod_id: int


def marker(vod_id: int) -> str:
    return f"[archivist-vod:{vod_id}]"


async def _publish_once(client: CablecastClient, vod: dict[str, Any]) -> Published:
    tag = marker(vod["id"])
    found = [s for s in await client.search_shows(tag) if tag in str(s.get("comments", ""))]
    if found:
        show = min(found, key=lambda s: int(s["id"]))
    else:
        comments = f"{vod.get('description') or ''}\n{tag}".strip()
        show = await client.create_show(
            vod["title"], comments, datetime.now(UTC).isoformat(timespec="seconds")
        )
    existing = show.get("vods") or []
    if existing:
        return Published(int(show["id"]), int(min(existing)))
    created = await client.create_vod(int(show["id"]))
    return Published(int(show["id"]), int(created["id"]))


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, CablecastError) and exc.retryable


async def publish(
    client: CablecastClient, vod: dict[str, Any], settings: WorkerSettings, on_retry: Any = None
) -> Published:
    """Publish with back-off; raises CablecastError when attempts run out or it is a 4xx."""
    retrying = AsyncRetrying(
        stop=stop_after_attempt(settings.publish_attempts),
        wait=wait_exponential(multiplier=settings.backoff_initial_s, max=settings.backoff_max_s)
        + wait_random(0, settings.backoff_initial_s),
        retry=retry_if_exception(_retryable),
        before_sleep=on_retry,
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            return await _publish_once(client, vod)
    raise AssertionError("unreachable: tenacity reraises the last error")

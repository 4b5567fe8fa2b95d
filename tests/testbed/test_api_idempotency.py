"""Idempotent VOD creation: one row per key, proven in PostgreSQL under concurrent retries."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg

from testbed.api.client import ArchivistClient
from testbed.stack import Stack
from tests.conftest import retrying_503

from .test_api_auth import assert_error


def test_same_key_and_body_returns_the_same_vod_and_a_different_body_conflicts(
    stack: Stack,
) -> None:
    """A 503 is retried with the same key, as a client does: idempotency is what allows it."""
    with ArchivistClient(stack.api_url) as api:
        retrying_503(api.login)
        key = uuid.uuid4().hex
        body = {"title": "idem", "file_name": "i.mp4"}

        def post(sent: dict[str, str]) -> httpx.Response:
            headers = {"Idempotency-Key": key}
            return retrying_503(
                lambda: api.request("POST", "/api/vods", json=sent, headers=headers)
            )

        first = post(body)
        again = post(body)
        assert (first.status_code, again.status_code) == (201, 200)
        assert again.json()["id"] == first.json()["id"]
        other = post(body | {"title": "other"})
        assert_error(other, 409, "conflict")


def test_twenty_concurrent_retries_of_one_key_make_one_row(stack: Stack) -> None:
    """Twenty clients post one body with one key at once, twice the API's database pool:
    exactly one creates the VOD, every other gets that same VOD back, one row in PostgreSQL.

    A request that waited out the pool (2 s) on a busy machine is answered 503; its client
    retries it with the same key, as the contract tells clients to. The retry must get the
    one VOD too, so a create that is not idempotent under concurrency still shows: two 201s,
    two ids, or two rows."""
    with ArchivistClient(stack.api_url) as api:
        retrying_503(api.login)
        headers = api.headers
    key = f"concurrent-{uuid.uuid4().hex}"
    body = {"title": "retried", "file_name": "r.mp4", "size_bytes": 42}
    unavailable: list[str] = []  # the 503s that were retried, for the report

    def post(_: int) -> httpx.Response:
        with httpx.Client(base_url=stack.api_url, timeout=20) as http:
            return retrying_503(
                lambda: http.post(
                    "/api/vods", json=body, headers=headers | {"Idempotency-Key": key}
                ),
                seen=unavailable,
            )

    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(post, range(20)))
    statuses = sorted(r.status_code for r in responses)
    print(f"\n{len(unavailable)} answers were 503 and retried: {unavailable[:2]}")
    problems = [r.text for r in responses if r.status_code not in (200, 201)]
    assert set(statuses) <= {200, 201}, problems
    # Exactly one 201, unless the request that created the row was answered 503 because it
    # ran over the request deadline (after its commit): then its retry, like all, got a 200.
    # (A 503 for a pool wait came before any INSERT.)
    over_deadline = [text for text in unavailable if "request took over" in text]
    assert statuses.count(201) == 1 or (statuses.count(201) == 0 and over_deadline), statuses
    assert len({r.json()["id"] for r in responses}) == 1
    with psycopg.connect(stack.database_url) as conn:
        rows = conn.execute("SELECT count(*) FROM vods WHERE idempotency_key = %s", (key,))
        assert rows.fetchone() == (1,)

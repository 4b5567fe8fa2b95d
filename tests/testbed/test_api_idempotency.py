"""Idempotent VOD creation: one row per key, proven in PostgreSQL under concurrent retries."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg

from testbed.api.client import ArchivistClient
from testbed.stack import Stack

from .test_api_auth import assert_error


def test_same_key_and_body_returns_the_same_vod_and_a_different_body_conflicts(
    stack: Stack,
) -> None:
    with ArchivistClient(stack.api_url) as api:
        api.login()
        key = uuid.uuid4().hex
        body = {"title": "idem", "file_name": "i.mp4"}
        first = api.request("POST", "/api/vods", json=body, headers={"Idempotency-Key": key})
        again = api.request("POST", "/api/vods", json=body, headers={"Idempotency-Key": key})
        assert (first.status_code, again.status_code) == (201, 200)
        assert again.json()["id"] == first.json()["id"]
        other = api.request(
            "POST", "/api/vods", json=body | {"title": "other"}, headers={"Idempotency-Key": key}
        )
        assert_error(other, 409, "conflict")


def test_twenty_concurrent_retries_of_one_key_make_one_row(stack: Stack) -> None:
    with ArchivistClient(stack.api_url) as api:
        api.login()
        headers = api.headers
    key = f"concurrent-{uuid.uuid4().hex}"
    body = {"title": "retried", "file_name": "r.mp4", "size_bytes": 42}

    def post(_: int) -> httpx.Response:
        with httpx.Client(base_url=stack.api_url, timeout=20) as http:
            return http.post("/api/vods", json=body, headers=headers | {"Idempotency-Key": key})

    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(post, range(20)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 19 + [201], [r.text for r in responses if r.status_code >= 300]
    assert len({r.json()["id"] for r in responses}) == 1
    with psycopg.connect(stack.database_url) as conn:
        rows = conn.execute("SELECT count(*) FROM vods WHERE idempotency_key = %s", (key,))
        assert rows.fetchone() == (1,)

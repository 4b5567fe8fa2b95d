"""VOD routes of the contract: CRUD, versions, cache invalidation, listing and paging."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from testbed.api.client import ArchivistClient
from testbed.stack import Stack
from tests.conftest import retrying_503

from .test_api_auth import assert_error


@pytest.fixture
def api(stack: Stack) -> Iterator[ArchivistClient]:
    with ArchivistClient(stack.api_url) as client:
        retrying_503(client.login)  # set-up, not judged: a loaded box may 503 it
        yield client


def test_create_read_update_delete(api: ArchivistClient) -> None:
    created = api.request(
        "POST",
        "/api/vods",
        json={"title": "Council 1", "file_name": "c1.mp4", "duration_s": 61.5, "size_bytes": 10},
    )
    assert created.status_code == 201
    vod = created.json()
    assert vod["status"] == "uploaded" and vod["version"] == 1
    assert vod["duration_s"] == 61.5 and vod["size_bytes"] == 10
    for name in (
        "id",
        "description",
        "cablecast_show_id",
        "cablecast_vod_id",
        "created_at",
        "updated_at",
    ):
        assert name in vod

    first = api.request("GET", f"/api/vods/{vod['id']}")
    assert first.status_code == 200 and first.json() == vod
    second = api.request("GET", f"/api/vods/{vod['id']}")
    assert second.headers["X-Cache"] == "hit"

    patched = api.request(
        "PATCH", f"/api/vods/{vod['id']}", json={"title": "Council 1b"}, headers={"If-Match": "1"}
    )
    assert patched.status_code == 200
    assert patched.json()["version"] == 2 and patched.json()["title"] == "Council 1b"
    # the cached copy was replaced, not served stale
    assert api.get_vod(vod["id"])["title"] == "Council 1b"

    stale = api.request(
        "PATCH", f"/api/vods/{vod['id']}", json={"title": "x"}, headers={"If-Match": "1"}
    )
    assert_error(stale, 409, "conflict")
    assert api.get_vod(vod["id"])["version"] == 2

    assert api.request("DELETE", f"/api/vods/{vod['id']}").status_code == 204
    assert_error(api.request("GET", f"/api/vods/{vod['id']}"), 404, "not_found")
    assert_error(api.request("DELETE", f"/api/vods/{vod['id']}"), 404, "not_found")


def test_unknown_ids_are_404(api: ArchivistClient) -> None:
    for method, path in [
        ("GET", "/api/vods/987654321"),
        ("DELETE", "/api/vods/987654321"),
        ("POST", "/api/vods/987654321/process"),
        ("GET", "/api/vods/abc"),
    ]:
        assert_error(api.request(method, path), 404, "not_found")
    patch = api.request("PATCH", "/api/vods/987654321", json={"title": "x"})
    assert_error(patch, 404, "not_found")


def test_bad_bodies_get_the_error_shape(api: ArchivistClient) -> None:
    assert_error(api.request("POST", "/api/vods", content=b'{"title": '), 400, "bad_request")
    assert_error(api.request("POST", "/api/vods", json=[1, 2]), 400, "bad_request")
    assert_error(api.request("POST", "/api/vods", json="text"), 400, "bad_request")
    assert_error(api.request("POST", "/api/vods", content=b""), 400, "bad_request")
    wrong = api.request(
        "POST", "/api/vods", json={"title": 7, "duration_s": "long", "size_bytes": -1}
    )
    error = assert_error(wrong, 422, "validation_error")
    fields = {d["field"] for d in error["details"]}  # type: ignore[union-attr, index]
    assert fields == {"title", "file_name", "duration_s", "size_bytes"}
    empty = api.request("POST", "/api/vods", json={"title": " ", "file_name": "a.mp4"})
    assert "title" in str(assert_error(empty, 422, "validation_error")["message"])
    vod = api.create_vod()
    bad_patch = api.request("PATCH", f"/api/vods/{vod['id']}", json={"status": "published"})
    assert_error(bad_patch, 422, "validation_error")
    bad_version = api.request(
        "PATCH", f"/api/vods/{vod['id']}", json={"title": "y"}, headers={"If-Match": "latest"}
    )
    assert_error(bad_version, 422, "validation_error")


def test_oversize_bodies_are_413_by_header_and_by_streamed_size(api: ArchivistClient) -> None:
    big = b'{"title": "' + b"a" * (1024 * 1024 + 10) + b'", "file_name": "a.mp4"}'
    assert_error(api.request("POST", "/api/vods", content=big), 413, "too_large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer
        yield big[: 512 * 1024]
        yield big[512 * 1024 :]

    assert_error(api.request("POST", "/api/vods", content=chunks()), 413, "too_large")


def test_unknown_route_and_wrong_method(api: ArchivistClient) -> None:
    assert_error(api.request("GET", "/api/nothing-here"), 404, "not_found")
    assert_error(api.request("GET", "/"), 404, "not_found")
    assert_error(api.request("PUT", "/api/vods"), 405, "method_not_allowed")
    assert_error(api.request("DELETE", "/api/auth/login"), 405, "method_not_allowed")


def test_list_pages_with_a_keyset_cursor_and_filters(api: ArchivistClient) -> None:
    tag = uuid.uuid4().hex[:10]
    ids = [api.create_vod(title=f"{tag} part {n}")["id"] for n in range(7)]
    seen: list[int] = []
    cursor = None
    for _ in range(10):
        params = {"limit": "3", "q": tag} | ({"cursor": cursor} if cursor else {})
        page = api.request("GET", "/api/vods", params=params)
        assert page.status_code == 200
        body = page.json()
        assert len(body["items"]) <= 3
        seen += [item["id"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(ids, reverse=True)  # newest first, each exactly once

    by_status = api.request("GET", "/api/vods", params={"q": tag, "status": "published"})
    assert by_status.json()["items"] == []
    uploaded = api.request("GET", "/api/vods", params={"q": tag, "status": "uploaded"})
    assert len(uploaded.json()["items"]) == 7

    assert_error(api.request("GET", "/api/vods", params={"limit": "0"}), 422, "validation_error")
    assert_error(api.request("GET", "/api/vods", params={"limit": "x"}), 422, "validation_error")
    assert_error(
        api.request("GET", "/api/vods", params={"status": "done"}), 422, "validation_error"
    )
    assert_error(api.request("GET", "/api/vods", params={"cursor": "!!"}), 422, "validation_error")


def test_health_reports_each_dependency_and_no_regression(stack: Stack) -> None:
    with ArchivistClient(stack.api_url) as api:
        # a 503 while a check waits out the 2 s pool on a loaded box is retried: "up" is
        # a 200 in bounded time
        health = retrying_503(lambda: api.http.get("/api/health"))
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "ok" and body["regression"] is None
    for name in ("database", "redis", "cablecast"):
        assert body["checks"][name]["ok"] is True
        assert body["checks"][name]["latency_ms"] >= 0


def test_edge_inputs_get_exact_answers(api: ArchivistClient) -> None:
    assert api.request("GET", "/api/vods", headers={"X-Padding": "p" * 8192}).status_code == 200
    huge_token = {"Authorization": "Bearer " + "t" * 8192}
    assert_error(api.http.get("/api/vods", headers=huge_token), 401, "unauthorized")
    body = {"title": "k", "file_name": "k.mp4"}
    for key in ("k" * 300,):  # (a blank key is refused by httpx before sending)
        blank = api.request("POST", "/api/vods", json=body, headers={"Idempotency-Key": key})
        assert_error(blank, 422, "validation_error")
    assert_error(api.request("GET", f"/api/vods/{2**63}"), 404, "not_found")
    form = api.request(
        "POST",
        "/api/vods",
        content=b"title=a&file_name=b.mp4",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_error(form, 400, "bad_request")
    plain = api.request(
        "POST",
        "/api/vods",
        content=b'{"title": "plain", "file_name": "p.mp4"}',
        headers={"Content-Type": "text/plain"},
    )
    assert plain.status_code == 201 and plain.json()["title"] == "plain"
    sneaky = "Robert'); DROP TABLE vods;--"
    assert api.create_vod(title=sneaky)["title"] == sneaky
    found = api.request("GET", "/api/vods", params={"q": sneaky})
    assert found.status_code == 200 and found.json()["items"][0]["title"] == sneaky
    assert api.request("GET", "/api/vods", params={"q": "100%_\\"}).status_code == 200
    unknown = api.request("POST", "/api/vods", json=body | {"is_admin": True})
    assert_error(unknown, 422, "validation_error")

"""The Cablecast simulator speaks the vendor's conventions, and publishing is idempotent."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx

from testbed.api.settings import AppConfig
from testbed.cablecast.client import CablecastClient
from testbed.stack import Stack
from testbed.worker.publish import publish

CONFIG = AppConfig.load()
AUTH = (CONFIG.cablecast.username, CONFIG.cablecast.password)


def test_writes_need_basic_auth_and_objects_sit_under_singular_roots(stack: Stack) -> None:
    title = f"show {uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=stack.cablecast_url, timeout=10) as http:
        assert http.post("/shows", json={"show": {"title": title}}).status_code == 401
        wrong = http.post("/shows", json={"show": {"title": title}}, auth=("archivist", "x"))
        assert wrong.status_code == 401
        created = http.post("/shows", json={"show": {"title": title, "comments": "c"}}, auth=AUTH)
        assert created.status_code == 200
        show = created.json()["show"]
        assert isinstance(show["id"], int) and show["vods"] == []
        assert http.get(f"/shows/{show['id']}").json() == {"show": show}
        vod = http.post(
            "/vods", json={"vod": {"show": show["id"], "vodConfiguration": 1}}, auth=AUTH
        ).json()["vod"]
        assert vod["show"] == show["id"] and vod["vodState"] in {"queued", "processing"}
        assert http.get(f"/shows/{show['id']}").json()["show"]["vods"] == [vod["id"]]
        bad = http.post("/vods", json={"vod": {"show": 10**9, "vodConfiguration": 1}}, auth=AUTH)
        assert bad.status_code == 400
        assert http.post("/vods", json={"show": show["id"]}, auth=AUTH).status_code == 400
        assert http.get("/shows/999999999").status_code == 404
        assert http.get(f"/vods/{10**30}").status_code == 404


def test_vod_state_moves_queued_processing_complete(stack: Stack) -> None:
    with httpx.Client(base_url=stack.cablecast_url, timeout=10, auth=AUTH) as http:
        show = http.post("/shows", json={"show": {"title": "progress"}}).json()["show"]
        vod = http.post("/vods", json={"vod": {"show": show["id"], "vodConfiguration": 1}})
        vod_id = vod.json()["vod"]["id"]
        states, percents = [], []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            current = http.get(f"/vods/{vod_id}").json()["vod"]
            states.append(current["vodState"])
            percents.append(current["percentComplete"])
            if current["vodState"] == "complete":
                break
            time.sleep(0.1)
    assert states[-1] == "complete" and percents[-1] == 100
    assert "processing" in states
    assert percents == sorted(percents)
    seen = list(dict.fromkeys(states))
    assert seen in (["queued", "processing", "complete"], ["processing", "complete"])


def test_lists_page_with_offset_and_page_size_and_any_case_base_path(stack: Stack) -> None:
    tag = uuid.uuid4().hex
    with httpx.Client(timeout=10, auth=AUTH) as http:
        for n in range(5):
            http.post(f"{stack.cablecast_url}/shows", json={"show": {"title": f"{tag} {n}"}})
        base = stack.cablecast_url.replace("/CablecastAPI/v1", "/cablecastapi/V1")
        page = http.get(f"{base}/shows", params={"search": tag, "page_size": 2, "offset": 2})
        assert page.status_code == 200
        body = page.json()
        assert body["meta"] == {"offset": 2, "pageSize": 2, "count": 5}
        assert [s["title"] for s in body["shows"]] == [f"{tag} 2", f"{tag} 3"]
        for resource, root in [
            ("locations", "locations"),
            ("channels", "channels"),
            ("vodconfigurations", "vodConfigurations"),
            ("vods", "vods"),
        ]:
            listing = http.get(f"{stack.cablecast_url}/{resource}").json()
            assert isinstance(listing[root], list) and "meta" in listing
        info = http.get(f"{stack.cablecast_url}/systeminfo").json()["systemInfo"]
        assert info["version"] == CONFIG.simulator.version
        bad = http.get(f"{stack.cablecast_url}/shows", params={"page_size": "lots"})
        assert bad.status_code == 400


def test_publishing_the_same_vod_twice_creates_one_show_and_one_cablecast_vod(
    stack: Stack,
) -> None:
    vod = {"id": 10**8 + int(time.time()) % 10**6, "title": "twice", "description": "d"}

    async def twice() -> tuple[object, object]:
        client = CablecastClient(stack.cablecast_url, CONFIG.cablecast)
        try:
            return (
                await publish(client, vod, CONFIG.worker),
                await publish(client, vod, CONFIG.worker),
            )
        finally:
            await client.aclose()

    first, second = asyncio.run(twice())
    assert first == second
    audit = httpx.get(
        f"{stack.cablecast_url}/_audit/received",
        params={"method": "POST", "limit": 100000},
        timeout=10,
    ).json()["received"]
    tag = f"[archivist-vod:{vod['id']}]"
    shows = [r for r in audit if r["path"].endswith("/shows") and tag in str(r["body"])]
    vods = [
        r
        for r in audit
        if r["path"].endswith("/vods")
        and r["status"] == 200
        and r["body"]["vod"]["show"] == first.show_id
    ]  # type: ignore[attr-defined]
    assert len(shows) == 1 and len(vods) == 1


def test_what_the_simulator_received_survives_its_restart(clean_faults: Stack) -> None:
    stack = clean_faults
    title = f"kept {uuid.uuid4().hex[:8]}"
    created = httpx.post(
        f"{stack.cablecast_url}/shows", json={"show": {"title": title}}, auth=AUTH, timeout=10
    ).json()["show"]
    before = httpx.get(f"{stack.cablecast_url}/_audit/received", timeout=10).json()["meta"]
    stack.kill("cablecast")
    stack.start("cablecast")
    after = httpx.get(f"{stack.cablecast_url}/_audit/received", timeout=10).json()["meta"]
    assert after["count"] >= before["count"]
    kept = httpx.get(f"{stack.cablecast_url}/shows/{created['id']}", timeout=10)
    assert kept.json()["show"]["title"] == title


def test_vod_chapters_and_qualities_answer_what_the_real_archivist_client_calls(
    stack: Stack,
) -> None:
    """core/cablecast_client.py of the real Archivist reads and writes /vods/{id}/chapters
    and lists /qualities; a 404 there would hide every chapter route behind an empty list."""
    with httpx.Client(base_url=stack.cablecast_url, timeout=10) as http:
        show = http.post("/shows", json={"show": {"title": "chapters"}}, auth=AUTH).json()["show"]
        vod = http.post(
            "/vods", json={"vod": {"show": show["id"], "vodConfiguration": 1}}, auth=AUTH
        ).json()["vod"]
        path = f"/vods/{vod['id']}/chapters"
        assert http.get(path).json()["chapters"] == []
        chapter = {"chapter": {"title": "Public comment", "startTime": 95, "body": "x"}}
        assert http.post(path, json=chapter).status_code == 401
        made = http.post(path, json=chapter, auth=AUTH)
        assert made.status_code == 200
        assert made.json()["chapter"] | {"id": 0} == {
            "id": 0, "vod": vod["id"], "title": "Public comment", "startTime": 95, "body": "x"
        }  # fmt: skip
        listed = http.get(path).json()
        assert listed["chapters"] == [made.json()["chapter"]] and listed["meta"]["count"] == 1
        assert http.post(path, json={"title": "flat"}, auth=AUTH).status_code == 400
        no_title = {"chapter": {"startTime": 1}}
        assert http.post(path, json=no_title, auth=AUTH).status_code == 400
        assert http.get("/vods/999999999/chapters").status_code == 404
        assert [q["id"] for q in http.get("/qualities").json()["qualities"]] == [1, 2, 3]

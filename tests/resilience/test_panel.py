"""The faults panel in Locust's real web UI: list links, add and remove toxics, record windows."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from faults.client import FaultClient
from faults.embedded import free_port

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def web_ui(
    lone_faults: FaultClient, tmp_path: Path, journal_dir: Path
) -> Iterator[tuple[str, Path, subprocess.Popen[bytes]]]:
    """Locust's web UI (not started: no load) with the panel, on a free port."""
    port = free_port()
    run_dir = tmp_path / "run"
    log = (tmp_path / "locust.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            "tests/resilience/panel_locustfile.py",
            "--web-host",
            "127.0.0.1",
            "--web-port",
            str(port),
            "--faults-url",
            lone_faults.url,
            "--run-dir",
            str(run_dir),
        ],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/faults/api/state", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                tail = (tmp_path / "locust.log").read_text()[-2000:]
                pytest.fail(f"Locust web UI did not come up: {tail}")
            time.sleep(0.2)
        yield base, run_dir, process
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(20)
                break
        log.close()


def test_the_panel_lists_links_adds_and_removes_toxics(
    web_ui: tuple[str, Path, subprocess.Popen[bytes]], lone_faults: FaultClient
) -> None:
    base, run_dir, _ = web_ui
    state = httpx.get(f"{base}/faults/api/state").json()
    assert [link["name"] for link in state["links"]] == ["cablecast", "postgres", "redis"]
    assert "<h1>Faults panel</h1>" in httpx.get(f"{base}/faults").text

    added = httpx.post(
        f"{base}/faults/api/inject",
        json={"link": "postgres", "toxic": "latency", "attributes": {"latency": 250}},
    )
    assert added.status_code == 201, added.text
    assert [(t.type, t.attributes["latency"]) for t in lone_faults.toxics("postgres")] == [
        ("latency", 250)
    ]
    down = httpx.post(f"{base}/faults/api/inject", json={"link": "redis", "toxic": "down"}).json()
    assert not lone_faults.proxy("redis").enabled

    # the Faults tab's table rides on the statistics Locust's UI polls
    stats = httpx.get(f"{base}/stats/requests").json()
    table = {
        row["link"]: row
        for row in next(e for e in stats["extended_stats"] if e["key"] == "faults")["data"]
    }
    assert table["redis"]["state"] == "DOWN" and "latency" in table["postgres"]["toxics"]
    assert "Faults" in httpx.get(f"{base}/").text  # the tab is in the page's template args

    removed = httpx.delete(f"{base}/faults/api/inject/{added.json()['id']}")
    assert (
        removed.status_code == 200 and removed.json()["what"] == "latency latency=250 on postgres"
    )
    assert lone_faults.toxics("postgres") == []
    assert httpx.post(f"{base}/faults/api/clear").status_code == 200
    assert lone_faults.proxy("redis").enabled
    recorded = [json.loads(line) for line in (run_dir / "faults.jsonl").read_text().splitlines()]
    assert [(w["link"], w["toxic"]) for w in recorded] == [
        ("postgres", "latency"),
        ("redis", "down"),
    ]
    assert down["what"] == "redis down"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"link": "postgress", "toxic": "latency"},
            "link 'postgress' is not a proxy; known: cablecast, postgres, redis",
        ),
        ({"link": "postgres", "toxic": "lag"}, "toxic 'lag' is not known"),
        (
            {"link": "postgres", "toxic": "latency", "attributes": {"delay": 1}},
            "attributes.delay is not an attribute of latency",
        ),
        (
            {"link": "postgres", "toxic": "bandwidth", "attributes": {"rate": -1}},
            "attributes.rate must be a whole number >= 0, got -1",
        ),
        (
            {"link": "postgres", "toxic": "latency", "toxicity": 2},
            "toxicity must be a number from 0 to 1",
        ),
        ([1, 2], "body must be a JSON object"),
    ],
)
def test_bad_requests_get_a_400_that_names_the_field(
    web_ui: tuple[str, Path, subprocess.Popen[bytes]],
    lone_faults: FaultClient,
    body: object,
    message: str,
) -> None:
    base, _, _ = web_ui
    answer = httpx.post(f"{base}/faults/api/inject", json=body)
    assert answer.status_code == 400
    assert message in answer.json()["error"]
    assert lone_faults.toxics("postgres") == []


def test_a_fault_left_in_place_is_removed_when_locust_quits(
    web_ui: tuple[str, Path, subprocess.Popen[bytes]], lone_faults: FaultClient
) -> None:
    base, run_dir, process = web_ui
    added = httpx.post(f"{base}/faults/api/inject", json={"link": "cablecast", "toxic": "down"})
    assert added.status_code == 201
    assert not lone_faults.proxy("cablecast").enabled
    assert httpx.delete(f"{base}/faults/api/inject/nope").status_code == 404
    os.killpg(process.pid, signal.SIGTERM)  # Locust quits; the panel's quitting hook runs
    process.wait(20)
    assert lone_faults.proxy("cablecast").enabled
    recorded = (run_dir / "faults.jsonl").read_text()
    assert "removed when Locust quit" in recorded

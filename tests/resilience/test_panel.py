"""The faults panel in Locust's real web UI: list links, add and remove toxics, record windows."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from faults.client import FaultClient
from faults.embedded import free_port
from tests.conftest import run_python

REPO = Path(__file__).resolve().parents[2]


def _template_args(page: str) -> dict[str, Any]:
    """The template arguments Locust's page hands its UI (window.templateArgs = {...})."""
    match = re.search(r"window\.templateArgs = (\{.*\})\s*$", page, re.MULTILINE)
    assert match, page[-1000:]
    args: dict[str, Any] = json.loads(match.group(1))
    return args


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
    # the tab's controls: Locust's page loads panel.js, which holds the add/remove form
    page = httpx.get(f"{base}/").text
    assert '<script src="/faults/panel.js" defer></script>' in page
    script = httpx.get(f"{base}/faults/panel.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert "Add a fault" in script.text and "Remove all added here" in script.text
    assert "/faults" not in json.dumps(_template_args(page).get("extended_csv_files", []))

    added = httpx.post(
        f"{base}/faults/api/inject",
        json={"link": "postgres", "toxic": "latency", "attributes": {"latency": 250}},
    )
    assert added.status_code == 201, added.text
    assert [(t.type, t.attributes["latency"]) for t in lone_faults.toxics("postgres")] == [
        ("latency", 250)
    ]
    down = httpx.post(f"{base}/faults/api/inject", json={"link": "redis", "toxic": "down"}).json()
    injected = httpx.get(f"{base}/faults/api/state").json()["injected"]
    assert [f["text"] for f in injected] == ["latency latency=250ms on postgres", "redis down"]
    assert not lone_faults.proxy("redis").enabled

    # the Faults tab's table rides on the statistics Locust's UI polls
    stats = httpx.get(f"{base}/stats/requests").json()
    table = {
        row["link"]: row
        for row in next(e for e in stats["extended_stats"] if e["key"] == "faults")["data"]
    }
    assert table["redis"]["state"] == "DOWN" and table["redis"]["added"] == "this tab"
    assert table["postgres"]["toxic"] == "latency"
    assert table["postgres"]["attributes"] == "latency=250ms, jitter=0ms"
    assert (table["postgres"]["stream"], table["postgres"]["added"]) == ("downstream", "this tab")
    assert table["cablecast"] == {"link": "cablecast", "state": "up", "toxic": "-"}
    tabs = _template_args(httpx.get(f"{base}/").text)["extended_tabs"]
    assert {"title": "Faults", "key": "faults"} in tabs

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
            {"link": "postgres", "toxic": "latency", "attributes": {"latency": 9}, "toxicity": 2},
            "toxicity must be a number above 0 and at most 1",
        ),
        (
            {"link": "postgres", "toxic": "latency", "attributes": {"latency": 9}, "toxicity": 0},
            "toxicity must be a number above 0 and at most 1 (0 would never apply it)",
        ),
        (
            {"link": "postgres", "toxic": "bandwidth", "attributes": {"rate": -1}},
            "attributes.rate is -1; it must be from 0 to",
        ),
        ([1, 2], "body must be a JSON object"),
        # a toxic that would do nothing, yet be recorded as a fault window
        (
            {"link": "postgres", "toxic": "bandwidth", "attributes": {}},
            "attributes bandwidth needs rate (KB/s) above 0; without it the toxic does nothing",
        ),
        (
            {"link": "postgres", "toxic": "bandwidth", "attributes": {"rate": 0}},
            "attributes bandwidth needs rate (KB/s) above 0",
        ),
        (
            {"link": "postgres", "toxic": "latency"},
            "attributes latency needs latency (ms) or jitter (ms) above 0",
        ),
        (
            {"link": "postgres", "toxic": "slow_close", "attributes": {"delay": 0}},
            "attributes slow_close needs delay (ms) above 0",
        ),
        # what the fault server itself would refuse
        (
            {"link": "postgres", "toxic": "latency", "attributes": {"latency": -5}},
            "attributes.latency is -5; it must be from 0 to 9007199254740992 (ms)",
        ),
        (
            {"link": "postgres", "toxic": "latency", "attributes": {"latency": 1.5}},
            "attributes.latency must be a whole number of ms, got 1.5",
        ),
        (
            {"link": "postgres", "toxic": "latency", "attributes": {"latency": "300"}},
            "attributes.latency must be a whole number of ms, got '300'",
        ),
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


def test_toxics_whose_zero_does_something_and_whole_floats_are_accepted(
    web_ui: tuple[str, Path, subprocess.Popen[bytes]], lone_faults: FaultClient
) -> None:
    base, _, _ = web_ui
    held = httpx.post(f"{base}/faults/api/inject", json={"link": "redis", "toxic": "timeout"})
    assert held.status_code == 201, held.text  # timeout 0: holds the data for ever
    slow = httpx.post(
        f"{base}/faults/api/inject",
        json={"link": "postgres", "toxic": "latency", "attributes": {"latency": 300.0}},
    )
    assert slow.status_code == 201, slow.text
    assert [t.attributes["latency"] for t in lone_faults.toxics("postgres")] == [300]
    assert slow.json()["what"] == "latency latency=300 on postgres"
    assert [t.type for t in lone_faults.toxics("redis")] == ["timeout"]


def test_the_panel_does_not_log_each_read_of_the_fault_server(
    web_ui: tuple[str, Path, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    base, _, process = web_ui
    for _ in range(3):  # each asks the fault server for its proxies
        assert httpx.get(f"{base}/faults/api/state").status_code == 200
    os.killpg(process.pid, signal.SIGTERM)  # Locust quits and flushes its log
    process.wait(20)
    log = (tmp_path / "locust.log").read_text()
    assert "Starting web interface at" in log  # Locust's own INFO lines are there
    assert "HTTP Request:" not in log, log[-2000:]


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


def test_faults_panel_py_still_loads_the_panel() -> None:
    """`locust -f ...,faults/panel.py` (its older place) loads locustfiles/panel.py, once."""
    code = (
        "from locust import events\n"
        "from locust.util.load_locustfile import load_locustfile\n"
        "load_locustfile('faults/panel.py')\n"
        "import faults.panel\n"
        "import locustfiles.panel\n"
        "assert faults.panel.Panel is locustfiles.panel.Panel\n"
        "print([h.__module__ for h in events.init._handlers])\n"
    )
    assert run_python(code) == "['workload.capture', 'locustfiles.panel']"


@pytest.mark.parametrize("panel", ["locustfiles/panel.py", "faults/panel.py"])
def test_the_panel_loads_beside_the_workloads(panel: str) -> None:
    """`locust -f locustfiles/vod.py,<panel>` as the README has it: both read --faults-url,
    which is registered once (a second add_argument would stop Locust before it starts)."""
    done = subprocess.run(
        [sys.executable, "-m", "locust", "-f", f"locustfiles/vod.py,{panel}", "-l"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "VodEditor" in done.stdout and "conflicting" not in done.stderr

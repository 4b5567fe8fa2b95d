"""Injecting, recording and always removing faults, on a real embedded fault server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from experiments.experiment import Fault
from experiments.timeline import Injector, Journal, Timeline, cleanup
from faults.client import FaultClient


def windows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "faults.jsonl").read_text().splitlines()]


def test_an_injected_toxic_is_journaled_recorded_and_removed(
    lone_faults: FaultClient, tmp_path: Path, journal_dir: Path
) -> None:
    injector = Injector(lone_faults, tmp_path)
    active = injector.inject("postgres", "latency", {"latency": 300})
    assert [t.type for t in lone_faults.toxics("postgres")] == ["latency"]
    journal = injector.journal.path.read_text().splitlines()
    assert json.loads(journal[0])["op"] == "inject"  # written before the toxic went in
    down = injector.inject("redis", "down")
    assert not lone_faults.proxy("redis").enabled
    injector.remove(active.id)
    assert lone_faults.toxics("postgres") == []
    assert injector.remove_all() == []
    assert lone_faults.proxy("redis").enabled
    recorded = windows(tmp_path)
    assert [(w["link"], w["toxic"]) for w in recorded] == [
        ("postgres", "latency"),
        ("redis", "down"),
    ]
    assert recorded[0]["what"] == "latency latency=300 on postgres"
    assert all(w["end"] > w["start"] for w in recorded)
    assert set(recorded[0]) == {
        "start",
        "end",
        "link",
        "toxic",
        "attributes",
        "stream",
        "toxicity",
        "what",
        "bytes",
    }
    # What each link carried while its fault was in place: nothing, nobody used them.
    assert recorded[0]["bytes"] == {"upstream": 0, "downstream": 0}
    assert recorded[1]["bytes"] == {"upstream": 0, "downstream": 0}
    assert down.id not in injector.active
    assert not injector.journal.path.exists()  # nothing left to undo: journal gone


def test_the_timeline_applies_faults_in_order(
    lone_faults: FaultClient, tmp_path: Path, journal_dir: Path
) -> None:
    faults = (
        Fault("postgres", "latency", at=1, duration=2, attributes={"latency": 10}),
        Fault("cablecast", "down", at=2, duration=2),
    )
    timeline = Timeline(Injector(lone_faults, tmp_path), faults)
    assert timeline.step(0.5) == []
    assert timeline.step(1.0) == ["+ latency latency=10 on postgres"]
    assert timeline.step(3.5) == ["+ cablecast down", "- latency latency=10 on postgres"]
    assert timeline.active == ["cablecast down"]
    assert timeline.step(10) == ["- cablecast down"]
    assert timeline.finished
    assert lone_faults.toxics("postgres") == [] and lone_faults.proxy("cablecast").enabled


CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from faults.client import FaultClient
    from experiments.timeline import Injector
    client = FaultClient(sys.argv[1])
    injector = Injector(client, Path(sys.argv[2]))
    injector.inject("redis", "timeout", {"timeout": 0})
    injector.inject("cablecast", "down")
    print("injected", flush=True)
    time.sleep(60)
    """
)


def test_cleanup_removes_what_a_sigkilled_process_left(
    lone_faults: FaultClient, tmp_path: Path, journal_dir: Path
) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, lone_faults.url, str(tmp_path)],
        stdout=subprocess.PIPE,
        env=os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == b"injected"
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
    assert [t.type for t in lone_faults.toxics("redis")] == ["timeout"]
    assert not lone_faults.proxy("cablecast").enabled
    lines = cleanup()
    assert len(lines) == 2 and all(line.startswith("removed") for line in lines)
    assert lone_faults.toxics("redis") == [] and lone_faults.proxy("cablecast").enabled
    assert list(journal_dir.glob("*.jsonl")) == []
    assert {w["link"] for w in windows(tmp_path)} == {"redis", "cablecast"}
    assert cleanup() == []


def test_cleanup_leaves_a_live_process_alone_and_drops_a_vanished_server(
    tmp_path: Path, journal_dir: Path
) -> None:
    journal = Journal("http://127.0.0.1:9", tmp_path)  # ours: this process is alive
    journal._append(
        {
            "op": "inject",
            "id": "x",
            "url": "http://127.0.0.1:9",
            "link": "redis",
            "toxic": "down",
            "name": "",
            "what": "redis down",
            "start": 1.0,
            "run_dir": None,
        }
    )
    assert cleanup() == []
    assert journal.path.exists()
    lines = cleanup(include_live=True)
    assert lines == ["http://127.0.0.1:9 is gone, and with it redis down"]
    assert not journal.path.exists()

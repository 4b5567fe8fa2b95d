"""The paired gate of two versions of the real Archivist (ARCHIVIST_SRC; skipped without
it): the same code on both sides passes and leaves nothing running; a copy with one fast
route made 100 ms slower (config/seeds `slow-fast-route`) fails on that route."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from testbed.hosted.seeding import in_order, load_seeds, seeded_copy
from tests.conftest import archivist_src

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.hosts_real_app, pytest.mark.timeout(1500)]


def gate(new: Path, old: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "analysis", "gate", "--app", "archivist-flask"]
    return subprocess.run(
        [*argv, "--app-src", str(new), "--against", str(old), *args],
        capture_output=True, text=True, cwd=ROOT, timeout=1400, env=dict(os.environ),
    )  # fmt: skip


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_the_same_code_on_both_sides_passes_and_leaves_nothing(tmp_path: Path) -> None:
    src = archivist_src()
    done = gate(src, src, "--slices", "2", "--junit", str(tmp_path / "gate.xml"))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Performance gate passed" in done.stdout
    assert "GET /api/member-cities: p50" in done.stdout  # the app's routes, compared
    assert (tmp_path / "gate.xml").is_file()
    assert not listening(6379), "the limiter Redis (or a stack's proxy) was left running"


def test_a_fast_route_made_100_ms_slower_fails_on_that_route(tmp_path: Path) -> None:
    src = archivist_src()
    slow = seeded_copy(src, tmp_path, in_order(load_seeds("archivist-flask"), ["slow-fast-route"]))
    done = gate(slow, src, "--slices", "12")  # 6 pairs: the fewest a 95% sign test decides on
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    assert "| ❌ FAIL | `GET /api/member-cities: p50 +50%`" in done.stdout, done.stdout[-3000:]

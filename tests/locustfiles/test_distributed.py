"""A real `--master` with two real `--worker` processes against the reference stack, each
with a run folder of its own as separate hosts would have: the master's folder must hold
every request and acknowledged write the workers made (workload.shipping), and a worker
killed mid-run must be named as lost."""

from __future__ import annotations

import http.server
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from faults.embedded import free_port
from tests.conftest import run_module, serving
from tests.locustfiles.distributed import (
    LOAD,
    Cluster,
    check_audit,
    check_run_dir_is_the_workers,
    check_worker_complete,
    distributed,
    master_file,
    meta_of,
    rows_of,
    target,
)


def test_the_masters_folder_holds_every_request_and_write_of_its_workers(
    clean_faults, tmp_path: Path
) -> None:
    """Ended by --run-time (Locust's quit path): the workers stop and send the rest before
    the master quits. Nothing is asserted about how many requests 10 s make, only that
    all of them arrived."""
    args = [*LOAD, "-t", "10s", *target(clean_faults)]
    with distributed(tmp_path, args, port=free_port()) as run:
        assert run.master.wait(150) == 0, run.master.text()[-3000:]
        for worker in run.workers:
            assert worker.wait(60) == 0, worker.text()[-3000:]
    ledger = [check_worker_complete(run.master_dir, w)[1] for w in run.workers]
    assert sum(ledger) > 0, "no acknowledged write: nothing for the audit to hold"
    for i, worker in enumerate(run.workers):  # no shared disk assumed: nothing of theirs
        assert not list((tmp_path / f"worker-{i}").glob("*.parquet")), worker.role
        assert not list((tmp_path / f"worker-{i}").glob("ledger-*")), worker.role
    check_run_dir_is_the_workers(run.master_dir, run.workers)
    check_audit(run.master_dir, clean_faults.database_url)
    assert meta_of(run.master_dir)["options"]["worker_data"] == "master"


def test_a_worker_killed_mid_run_is_named_as_lost_and_the_rest_is_whole(
    clean_faults, tmp_path: Path
) -> None:
    """SIGKILL of one worker once both have sent rows; then the run is ended (STOP_PLUGIN)
    whether or not the master has noticed yet: it waits for the killed worker to be missing
    (or its final report, which never comes) and records it as lost."""
    args = [*LOAD, "-t", "90s", *target(clean_faults)]
    with distributed(tmp_path, args, port=free_port()) as run:
        wait_until_both_shipped(run)
        killed = run.workers[1]
        os.killpg(killed.proc.pid, signal.SIGKILL)
        killed.proc.wait(10)
        run.stop_file.touch()
        run.master.wait(150)
        survivor = run.workers[0]
        assert survivor.wait(60) == 0, survivor.text()[-3000:]
    kept_id, _ = check_worker_complete(run.master_dir, survivor)
    workers = meta_of(run.master_dir)["workers"]
    [lost_id] = set(workers) - {kept_id}
    lost = workers[lost_id]
    received = len(rows_of(master_file(run.master_dir, lost_id)))
    assert lost["ended"] == "lost" and lost["rows_received"] == received > 0, lost
    assert lost["rows_sent"] is None  # it never sent its final report

    summary = run_module("analysis", "summary", str(run.master_dir), timeout=120)
    assert summary.returncode == 0, summary.stderr
    assert (
        f"worker {lost_id} was LOST before its final report: kept only what it sent until "
        f"then ({received} requests, {lost['ledger_received']} ledger entries)"
    ) in summary.stdout, summary.stdout
    assert kept_id not in summary.stdout  # a worker that ended normally is not flagged


SLOW_S = 2.0
# Every user is always in the middle of a SLOW_S request: a stop lets each one finish it.
SLOW_LOCUSTFILE = """
import workload.capture  # noqa: F401
import workload.shipping  # noqa: F401
from locust import FastHttpUser, constant, task


class Waiter(FastHttpUser):
    wait_time = constant(0)

    @task
    def slow(self):
        self.client.get("/slow")
"""


class SlowCounter(http.server.ThreadingHTTPServer):
    daemon_threads = True
    hits = 0
    lock = threading.Lock()


class SlowHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        time.sleep(SLOW_S)
        server = self.server
        assert isinstance(server, SlowCounter)
        with server.lock:
            server.hits += 1
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


def wait_until_both_shipped(run: Cluster) -> None:
    deadline = time.monotonic() + 90
    while len(list(run.master_dir.glob("requests-*.parquet"))) < 2:
        assert run.master.proc.poll() is None, run.master.text()[-3000:]
        assert time.monotonic() < deadline, "the workers never shipped rows"
        time.sleep(0.2)


@pytest.mark.parametrize("stop", ["run-time", "worker-sigterm"])
def test_requests_a_stop_lets_finish_still_reach_the_master(tmp_path: Path, stop: str) -> None:
    """Every user is SLOW_S into a request when the load stops, and --stop-timeout lets it
    finish; the master's folder must then hold exactly what the server answered.

    - run-time: Locust's master tells its workers to quit and stops listening 0.5 s later;
      their last requests arrive only because the master first asks each worker to stop
      and send the rest, and waits for its report;
    - worker-sigterm: the workers are told to stop (SIGTERM) mid-run, one after the other;
      each must send all it did before it tells the master that it quits: once the last
      one has, the master stops listening and ends the run.
    """
    locustfile = tmp_path / "slow.py"
    locustfile.write_text(SLOW_LOCUSTFILE)
    with serving(SlowCounter(("127.0.0.1", 0), SlowHandler)) as server:
        host = f"http://127.0.0.1:{server.server_address[1]}"
        run_time = "5s" if stop == "run-time" else "90s"
        args = ["--headless", "-u", "4", "-r", "4", "-t", run_time, "--stop-timeout", "10"]
        with distributed(
            tmp_path, [*args, "-H", host], port=free_port(), locustfile=str(locustfile)
        ) as run:
            if stop == "worker-sigterm":
                wait_until_both_shipped(run)
                for worker in run.workers:
                    worker.proc.send_signal(signal.SIGTERM)
            assert run.master.wait(120) == 0, run.master.text()[-3000:]
            for worker in run.workers:
                assert worker.wait(60) == 0, worker.text()[-3000:]
        hits = server.hits
    rows = [r for w in run.workers for r in rows_of(master_file(run.master_dir, w.totals()[0]))]
    assert len(rows) == hits > 0
    assert sorted(rows) == sorted(r for w in run.workers for r in w.seen())
    assert {w["ended"] for w in meta_of(run.master_dir)["workers"].values()} == {"normally"}

"""A distributed Locust run as separate hosts make it: one `--master`, workers each with a
`--run-dir` of its own, and the checks that the master's folder holds all they did.

Each worker also loads WITNESS_PLUGIN: it notes every request Locust reports in that
worker (type, name, latency in µs, outcome) and writes the list to a file of the test's
at quit. That is the workers' own account, kept apart from the capture and shipping being
tested, to compare the master's folder with.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from analysis.load import load_run
from analysis.stats import summarise
from tests.conftest import process_group, run_module
from tests.locustfiles.conftest import REPO_ROOT, STOP_PLUGIN
from workload.inbox import file_stem

WITNESS_PLUGIN = """
import json
import os

from locust import events

_seen = []


@events.request.add_listener
def _witness(request_type, name, response_time, exception=None, **_):
    _seen.append([request_type, name, round((response_time or 0.0) * 1000.0), exception is None])


@events.quit.add_listener
def _write(**_):
    if path := os.environ.get("LOADKIT_TEST_WITNESS"):
        with open(path, "w") as out:
            json.dump(_seen, out)
"""

# The line a shipping worker logs at quit (workload.shipping).
TOTALS = re.compile(
    r"worker data of (\S+): recorded (\d+) requests and (\d+) ledger entries; "
    r"sent (\d+) rows and (\d+) ledger entries"
)

# -T db: creates, edits and deletes, so the ledger has writes for the audit to hold.
LOAD = ["--headless", "-u", "6", "-r", "6", "--stop-timeout", "5", "-T", "db"]

Wrap = Callable[[str, list[str]], list[str]]  # (role, command) -> the command to start


def target(stack: Any) -> list[str]:
    return [
        "--host", stack.api_url,
        "--cablecast-url", stack.cablecast_url,
        "--faults-url", stack.fault_url,
    ]  # fmt: skip


@dataclass
class Side:
    """One Locust process of the run: its log and, for a worker, its witness file."""

    role: str
    proc: subprocess.Popen[str]
    log: Path
    witness: Path | None

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{self.role} ran over {timeout:g}s\n{self.text()[-3000:]}")

    def totals(self) -> tuple[str, int, int]:
        """(client id, requests recorded, ledger entries) as the worker logged them; it must
        also have sent all of them."""
        found = TOTALS.search(self.text())
        assert found, f"{self.role} logged no totals:\n{self.text()[-3000:]}"
        client_id, recorded, ledger, rows_sent, lines_sent = found.groups()
        assert (rows_sent, lines_sent) == (recorded, ledger), found.group(0)
        return client_id, int(recorded), int(ledger)

    def seen(self) -> list[tuple[str, str, int, bool]]:
        assert self.witness is not None
        return [tuple(r) for r in json.loads(self.witness.read_text())]  # type: ignore[misc]


@dataclass
class Cluster:
    master: Side
    workers: list[Side]
    master_dir: Path
    stop_file: Path


@contextmanager
def distributed(
    tmp: Path,
    locust_args: list[str],
    *,
    workers: int = 2,
    port: int,
    master_host: str = "127.0.0.1",
    bind_host: str = "127.0.0.1",
    worker_dirs: list[Path] | None = None,
    wrap: Wrap = lambda role, cmd: cmd,
    locustfile: str = "locustfiles/vod.py",
) -> Iterator[Cluster]:
    """A master of `locustfile` (`locust_args`: -u, -t, target ...; its folder tmp/master)
    and `workers` workers connecting to `master_host:port`, each with its own run folder
    (tmp/worker-N unless `worker_dirs` says). `wrap` may start a command elsewhere (in a
    namespace).

    Every process runs in a process group of its own, SIGKILLed at the end of the block if
    it still runs, so a failure leaves nothing behind. The master also loads STOP_PLUGIN:
    touching `stop_file` ends the run as its -t would.
    """
    plugins = tmp / "plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    (plugins / "witness.py").write_text(WITNESS_PLUGIN)
    (plugins / "stop_when_told.py").write_text(STOP_PLUGIN)
    files = f"{locustfile},{plugins / 'witness.py'},{plugins / 'stop_when_told.py'}"
    locust = [sys.executable, "-m", "locust", "-f", files]
    master_dir, stop_file = tmp / "master", tmp / "stop"
    dirs = worker_dirs or [tmp / f"worker-{i}" for i in range(workers)]
    env = {"LOADKIT_SEED": "7", "LOADKIT_TEST_STOP_FILE": str(stop_file)}
    with ExitStack() as stack:

        def start(role: str, cmd: list[str], witness: Path | None) -> Side:
            log = tmp / f"{role}.log"
            out = stack.enter_context(log.open("w"))
            extra = {"LOADKIT_TEST_WITNESS": str(witness)} if witness else {}
            proc = stack.enter_context(
                process_group(
                    wrap(role, cmd), cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=out,
                    stderr=subprocess.STDOUT, text=True,
                    env={**os.environ, **env, **extra},
                )
            )  # fmt: skip
            return Side(role, proc, log, witness)

        master_cmd = [
            *locust, "--master", "--master-bind-host", bind_host,
            "--master-bind-port", str(port), "--expect-workers", str(len(dirs)),
            "--expect-workers-max-wait", "60", "--run-dir", str(master_dir), *locust_args,
        ]  # fmt: skip
        master = start("master", master_cmd, None)
        sides = []
        for i, run_dir in enumerate(dirs):
            worker_cmd = [
                *locust, "--worker", "--master-host", master_host,
                "--master-port", str(port), "--run-dir", str(run_dir),
            ]  # fmt: skip
            sides.append(start(f"worker-{i}", worker_cmd, tmp / f"witness-{i}.json"))
        yield Cluster(master, sides, master_dir, stop_file)


def master_file(master_dir: Path, client_id: str) -> Path:
    return master_dir / f"requests-{file_stem(client_id)}.parquet"


def master_ledger(master_dir: Path, client_id: str) -> list[str]:
    path = master_dir / f"ledger-{file_stem(client_id)}.jsonl"
    return path.read_text().splitlines() if path.exists() else []


def rows_of(part: Path) -> list[tuple[str, str, int, bool]]:
    table = pq.read_table(part, columns=["type", "name", "latency_us", "ok"]).to_pydict()
    return list(
        zip(
            map(str, table["type"]), map(str, table["name"]), table["latency_us"], table["ok"],
            strict=True,
        )
    )  # fmt: skip


def meta_of(run_dir: Path) -> dict[str, Any]:
    return dict(json.loads((run_dir / "meta.json").read_text()))


def check_worker_complete(master_dir: Path, worker: Side) -> tuple[str, int]:
    """Every request and ledger entry of `worker` is in the master's folder, and nothing in
    its own; (client id, ledger entries)."""
    client_id, recorded, ledger = worker.totals()
    seen = worker.seen()
    assert len(seen) == recorded > 0, (worker.role, len(seen), recorded)
    # The very same requests, latency for latency: not only as many.
    assert Counter(rows_of(master_file(master_dir, client_id))) == Counter(seen)
    assert len(master_ledger(master_dir, client_id)) == ledger
    # Acknowledged writes, counted from the worker's own account of its requests: each ok
    # create is one "created" entry (workload.client records it from the 201).
    kinds = Counter(json.loads(line)["kind"] for line in master_ledger(master_dir, client_id))
    creates = sum(1 for t, n, _, ok in seen if (t, n, ok) == ("POST", "/api/vods", True))
    assert kinds["created"] == creates, (kinds, creates)
    entry = meta_of(master_dir)["workers"][client_id]
    assert entry == {
        "rows_received": recorded, "ledger_received": ledger, "rows_sent": recorded,
        "ledger_sent": ledger, "ended": "normally",
    }  # fmt: skip
    return client_id, ledger


def check_run_dir_is_the_workers(master_dir: Path, workers: list[Side]) -> None:
    """Exact percentiles from the master's folder are those of the union of the workers' own
    requests."""
    latencies = [us for w in workers for _, _, us, _ in w.seen()]
    run = load_run(master_dir)
    assert len(run.samples) == len(latencies)
    expected = np.quantile(np.asarray(latencies) / 1000.0, [0.5, 0.95, 0.99])
    got = summarise(run.samples, run.duration_s).loc["ALL", ["p50", "p95", "p99"]]
    assert got.to_numpy() == pytest.approx(expected, rel=1e-12)


def check_audit(master_dir: Path, database_url: str) -> None:
    """The audit of the master's ledger against PostgreSQL: every acknowledged write kept."""
    audit = run_module(
        "experiments", "audit", str(master_dir), "--database-url", database_url, timeout=120
    )
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert "lost 0, duplicated 0, inconsistent 0, stuck 0" in audit.stdout, audit.stdout

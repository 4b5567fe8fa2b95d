"""What shipping its rows to the master costs one worker: `--worker-data master` vs `local`.

One `--master` and one `--worker` (real processes, on this machine) drive a trivial local
HTTP server (bench/locust_overhead.py's) as fast as they can, in interleaved rounds:

- `local`: the worker writes its request rows and ledger to its own run folder (Parquet),
  as under `--processes`;
- `ship`: the worker sends them to the master in batches over Locust's channel
  (workload.shipping), and the master writes them.

The figures per mode, medians over the rounds: requests per second of load (rows recorded
over the run's start-to-end time in meta.json) and the CPU per request in µs of the worker
and of the master: user+system time from the load's start (meta.json written) to the
process's end (wait4), over the requests. On one machine the master's work takes CPU from
the worker, which separate hosts would not; the CPU columns show each side's own cost.

    .venv/bin/python bench/ship_rows.py [--rounds 3] [--seconds 6] [--users 10]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as `python bench/ship_rows.py`: the repo's bench package

from bench.locust_overhead import start_server  # noqa: E402
from faults.embedded import free_port  # noqa: E402

LOCUSTFILE = """
import workload.capture  # noqa: F401
import workload.shipping  # noqa: F401
from locust import FastHttpUser, constant, task


class Fast(FastHttpUser):
    wait_time = constant(0)

    @task
    def health(self):
        self.client.get("/api/health")
"""


def cpu_of(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


def one_round(
    mode: str, host: str, users: int, seconds: float, tmp: Path
) -> tuple[float, float, float]:
    """(requests per second, CPU µs per request of the worker, of the master) of one
    master + one worker run."""
    locustfile = tmp / "fast.py"
    locustfile.write_text(LOCUSTFILE)
    master_dir, worker_dir = tmp / f"{mode}-master", tmp / f"{mode}-worker"
    port = str(free_port())
    common = [sys.executable, "-m", "locust", "-f", str(locustfile), "--only-summary"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    master_cmd = [
        *common, "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", port,
        "--expect-workers", "1", "--headless", "-u", str(users), "-r", str(users),
        "-t", f"{seconds:g}s", "-H", host, "--run-dir", str(master_dir),
        "--worker-data", "master" if mode == "ship" else "local",
    ]  # fmt: skip
    worker_cmd = [
        *common, "--worker", "--master-host", "127.0.0.1", "--master-port", port,
        "--run-dir", str(worker_dir),
    ]  # fmt: skip
    quiet = {"cwd": tmp, "env": env, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    master = subprocess.Popen(master_cmd, **quiet)  # type: ignore[call-overload]
    worker = subprocess.Popen(worker_cmd, **quiet)  # type: ignore[call-overload]
    try:
        # The master writes meta.json at test start: CPU spent before (imports, connecting)
        # is not the load's, and would weigh more where fewer requests are made.
        deadline = time.monotonic() + 60
        while not (master_dir / "meta.json").exists():
            if time.monotonic() > deadline or master.poll() is not None:
                raise SystemExit(f"error: the {mode} round never started")
            time.sleep(0.01)
        before = {p.pid: cpu_of(psutil.Process(p.pid)) for p in (worker, master)}
        after = {}
        for proc in (worker, master):
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            after[proc.pid] = usage.ru_utime + usage.ru_stime
    finally:
        for proc in (worker, master):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    parts = [*master_dir.glob("requests-*.parquet"), *worker_dir.glob("requests-*.parquet")]
    rows = sum(pq.read_metadata(p).num_rows for p in parts)
    meta = json.loads((master_dir / "meta.json").read_text())
    if rows == 0 or worker.returncode != 0:
        code = worker.returncode
        raise SystemExit(f"error: the {mode} round recorded {rows} requests (exit {code})")
    cost = {pid: (after[pid] - before[pid]) / rows * 1e6 for pid in after}
    return rows / (float(meta["end"]) - float(meta["start"])), cost[worker.pid], cost[master.pid]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--users", type=int, default=10)
    args = parser.parse_args()
    if args.rounds < 1 or args.seconds <= 0 or args.users < 1:
        parser.error("--rounds, --seconds and --users must be positive")
    server, host = start_server()
    modes = ["local", "ship"]
    results: dict[str, list[tuple[float, float, float]]] = {m: [] for m in modes}
    try:
        with tempfile.TemporaryDirectory(prefix="ship-rows-") as tmp:
            for i in range(args.rounds):
                for mode in modes if i % 2 == 0 else modes[::-1]:
                    where = Path(tmp) / f"round-{i}"
                    where.mkdir(exist_ok=True)
                    results[mode].append(one_round(mode, host, args.users, args.seconds, where))
    finally:
        server.kill()
        server.wait()
    print(
        f"{'worker data':<12} {'req/s':>8} {'worker µs/req':>14} {'master µs/req':>14}"
        f" {'req/s range':>14}   (one worker, {args.users} users, {args.seconds:g} s, "
        f"{args.rounds} rounds, medians)"
    )
    med = {m: tuple(map(statistics.median, zip(*v, strict=True))) for m, v in results.items()}
    for mode, (rate, worker_us, master_us) in med.items():
        rates = [r[0] for r in results[mode]]  # the spread says how much a median can be trusted
        spread = f"{min(rates):.0f}-{max(rates):.0f}"
        print(f"{mode:<12} {rate:>8.0f} {worker_us:>14.1f} {master_us:>14.1f} {spread:>14}")
    (rate_l, worker_l, master_l), (rate_s, worker_s, master_s) = med["local"], med["ship"]
    print(
        f"shipping: {rate_s / rate_l - 1:+.1%} requests/s; CPU per request "
        f"{worker_s - worker_l:+.1f} µs on the worker, {master_s - master_l:+.1f} µs on the master"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

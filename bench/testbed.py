"""Throughput and latency of the reference Archivist API, through the fault proxies and
direct, in one run.

    python bench/testbed.py [--concurrency 16] [--duration 3] [--rounds 3] [--quick]

Starts the stack (free ports, temporary state), and a second API process that talks to
PostgreSQL, Redis and Cablecast directly. Two scenarios: `GET /api/vods/{id}` (served
from the Redis cache after the first read) and `GET /api/vods?limit=20`. Each round runs
every (target, scenario) pair for `--duration` seconds with `--concurrency` client
threads; the target order alternates between rounds because a shared machine drifts, and
the table shows the medians over rounds. The clients are threads in this process, so on
a small machine they compete with the servers for CPU: compare rows, not absolute rates.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

# This file is named like the `testbed` package it measures; run as a script, its own
# folder comes first on sys.path and would shadow the package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from testbed.api.client import ArchivistClient  # noqa: E402
from testbed.ports import free_ports  # noqa: E402
from testbed.processes import ManagedProcess, wait_healthy  # noqa: E402
from testbed.stack import Stack, StackSettings, running_stack  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Sample:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def run_load(base_url: str, token: str, path: str, concurrency: int, duration: float) -> Sample:
    """`concurrency` threads issue GET `path` back to back for `duration` seconds."""
    stop_at = time.monotonic() + duration
    lock = threading.Lock()
    latencies: list[float] = []
    errors = 0

    def client() -> None:
        nonlocal errors
        mine: list[float] = []
        failed = 0
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=base_url, timeout=10, headers=headers) as http:
            while time.monotonic() < stop_at:
                start = time.perf_counter()
                try:
                    ok = http.get(path).status_code == 200
                except httpx.HTTPError:
                    ok = False
                mine.append((time.perf_counter() - start) * 1000)
                failed += not ok
        with lock:
            latencies.extend(mine)
            errors += failed

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for future in [pool.submit(client) for _ in range(concurrency)]:
            future.result()
    elapsed = time.monotonic() - started
    if len(latencies) < 2:
        return Sample(0.0, float("nan"), float("nan"), errors)
    cuts = statistics.quantiles(latencies, n=100)
    return Sample(len(latencies) / elapsed, cuts[49], cuts[98], errors)


def start_direct_api(stack: Stack, log_dir: Path) -> tuple[ManagedProcess, str]:
    """A second API process whose dependency URLs bypass the proxies."""
    (port,) = free_ports("127.0.0.1", 1)
    env = dict(os.environ) | {
        "ARCHIVIST_DATABASE_URL": stack.database_url,
        "ARCHIVIST_REDIS_URL": stack.redis_url,
        "ARCHIVIST_CABLECAST_URL": stack.cablecast_url,
    }
    env.pop("ARCHIVIST_REGRESSION", None)
    argv = [sys.executable, "-m", "testbed.api", "--host", "127.0.0.1", "--port", str(port)]
    process = ManagedProcess("api-direct", argv, log_dir / "api-direct.log", env=env, cwd=REPO)
    url = f"http://127.0.0.1:{port}"
    process.start()

    def healthy() -> bool:
        return httpx.get(f"{url}/api/health", timeout=2).status_code == 200

    wait_healthy(process, healthy, 45.0, what="api-direct")
    return process, url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=16, help="client threads (16)")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per run (3)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (3)")
    parser.add_argument("--quick", action="store_true", help="1 s runs, 2 rounds: a smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.rounds = 1.0, 2
    if not (1 <= args.concurrency <= 256 and 0.2 <= args.duration <= 60 and 1 <= args.rounds <= 20):
        parser.error("need 1 <= concurrency <= 256, 0.2 <= duration <= 60, 1 <= rounds <= 20")

    state = Path(tempfile.mkdtemp(prefix="bench-testbed-"))
    settings = StackSettings.from_config(free_ports=True, state_dir=state)
    with running_stack(settings) as stack:
        direct, direct_url = start_direct_api(stack, state / "logs")
        try:
            with ArchivistClient(stack.api_url) as api:
                api.login()
                token = api.token or ""
                ids = [api.create_vod(title=f"bench {n}")["id"] for n in range(100)]
            targets = {"proxied": stack.api_url, "direct": direct_url}
            scenarios = {"get cached": f"/api/vods/{ids[0]}", "list 20": "/api/vods?limit=20"}
            results: dict[tuple[str, str], list[Sample]] = {}
            for round_no in range(args.rounds):
                order = list(targets) if round_no % 2 == 0 else list(reversed(targets))
                for target in order:
                    for scenario, path in scenarios.items():
                        sample = run_load(
                            targets[target], token, path, args.concurrency, args.duration
                        )
                        results.setdefault((target, scenario), []).append(sample)
        finally:
            direct.stop()

    print(
        f"Archivist API, {args.concurrency} client threads, {args.duration:g} s x "
        f"{args.rounds} interleaved rounds, medians over rounds"
    )
    print(f"{'scenario':<12} {'target':<8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for scenario in scenarios:
        for target in targets:
            samples = results[(target, scenario)]
            print(
                f"{scenario:<12} {target:<8} "
                f"{statistics.median(s.rps for s in samples):>8.0f} "
                f"{statistics.median(s.p50_ms for s in samples):>8.2f} "
                f"{statistics.median(s.p99_ms for s in samples):>8.2f} "
                f"{sum(s.errors for s in samples):>7d}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

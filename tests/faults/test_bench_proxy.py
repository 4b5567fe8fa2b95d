"""bench/proxy.py runs end to end and refuses bad arguments clearly."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
BENCH = ROOT / "bench" / "proxy.py"
# The bench measures a real toxiproxy-server too, last, when one is on PATH.
REAL = ["real"] if shutil.which("toxiproxy-server") else []


def run_bench(
    *args: str, timeout: float, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BENCH), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env,
    )


def test_quick_run_prints_the_table_and_a_verdict_per_target() -> None:
    result = run_bench("--quick", timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    for label in ("round trip p50 (us)", "messages/s (64 conns)", "bulk MB/s each way"):
        assert label in out
    header = next(line for line in out.splitlines() if line.startswith("metric")).split()[1:]
    assert header == ["direct", "embedded", "busy-poll", *REAL]
    proxy_cpu = next(line for line in out.splitlines() if "CPU us/round trip, proxy" in line)
    cpu = dict(zip(header, proxy_cpu.split()[-len(header) :], strict=True))
    assert cpu["direct"] == "-"
    assert float(cpu["embedded"]) > 0 and float(cpu["busy-poll"]) > 0  # each server's own CPU
    assert "busy-poll vs direct:" in out
    assert "at most" in out and "of direct messages/s" in out
    assert "embedded vs direct:" in out
    verdicts = [line for line in out.splitlines() if line.strip().startswith(("PASS", "MISS"))]
    assert len(verdicts) >= 3


def test_bad_rounds_is_refused_with_a_message() -> None:
    result = run_bench("--rounds", "0", timeout=30)
    assert result.returncode == 2
    assert "--rounds must be between 1 and 50, got 0" in result.stderr


def test_bad_busy_poll_is_refused_and_zero_leaves_the_column_out() -> None:
    result = run_bench("--busy-poll", "-5", timeout=30)
    assert result.returncode == 2
    assert "--busy-poll must be between 0 and 10000" in result.stderr
    result = run_bench("--quick", "--busy-poll", "0", timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    header = next(line for line in result.stdout.splitlines() if line.startswith("metric"))
    assert header.split() == ["metric", "direct", "embedded", *REAL]


def test_streams_client_runs_and_says_which_client_it_measured() -> None:
    result = run_bench("--quick", "--client", "streams", timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "streams client and echo" in result.stdout
    assert "embedded vs direct:" in result.stdout


def test_reference_without_go_is_refused_before_anything_starts(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}  # an empty directory: no `go` on it
    result = run_bench("--quick", "--reference", timeout=30, env=env)
    assert result.returncode == 2
    assert "--reference needs the Go toolchain, and there is no `go` on PATH" in result.stderr


@pytest.mark.skipif(shutil.which("go") is None, reason="needs the Go toolchain on PATH")
def test_reference_proxy_is_built_measured_and_compared_with_the_embedded_server() -> None:
    result = run_bench("--quick", "--reference", timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    header = next(line for line in result.stdout.splitlines() if line.startswith("metric"))
    assert header.split() == ["metric", "direct", "reference", "embedded", "busy-poll", *REAL]
    assert "reference vs direct:" in result.stdout
    assert "embedded vs reference: p50" in result.stdout
    assert "busy-poll vs reference: p50" in result.stdout

"""bench/proxy.py runs end to end and refuses bad arguments clearly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]
BENCH = ROOT / "bench" / "proxy.py"


def run_bench(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BENCH), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def test_quick_run_prints_the_table_and_a_verdict_per_target() -> None:
    result = run_bench("--quick", timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    for label in ("round trip p50 (us)", "messages/s (64 conns)", "bulk MB/s each way"):
        assert label in out
    proxy_cpu = next(line for line in out.splitlines() if "CPU us/round trip, proxy" in line)
    direct, embedded = proxy_cpu.split()[-2:]
    assert direct == "-" and float(embedded) > 0  # the embedded server's own CPU, counted
    assert "at most" in out and "of direct messages/s" in out
    assert "embedded vs direct:" in out
    verdicts = [line for line in out.splitlines() if line.strip().startswith(("PASS", "MISS"))]
    assert len(verdicts) >= 3


def test_bad_rounds_is_refused_with_a_message() -> None:
    result = run_bench("--rounds", "0", timeout=30)
    assert result.returncode == 2
    assert "--rounds must be between 1 and 50, got 0" in result.stderr

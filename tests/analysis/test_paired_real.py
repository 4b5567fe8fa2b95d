"""``gate --against REF`` for real: two stacks, Locust slices, clean-up, exit codes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from junitparser import JUnitXml

from testbed.stack import temporary_state_dir

from .conftest import without_absolute_checks

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def tmp_base() -> Iterator[Path]:
    """TMPDIR of the command: in the system temp dir, not under pytest's tmp_path, which
    other pytest sessions reset to mode 0700 (PostgreSQL, run as its own user by root,
    must traverse the path to its data)."""
    with temporary_state_dir("paired-gate-test-") as path:
        yield path


def gate(tmp_path: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """The real command; TMPDIR points at tmp_path so its temporary folder can be checked."""
    return subprocess.run(
        [sys.executable, "-m", "analysis", "gate", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )


def leftovers(tmp_path: Path) -> list[Path]:
    return list(tmp_path.glob("paired-gate-*"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--against", "no-such-ref-xyz"], "no-such-ref-xyz: not a commit of this repository"),
        (["--against", "HEAD", "--slices", "3"], "slices must be an even number"),
        (["--against", "HEAD", "--slice-seconds", "2"], "slice_s must be longer than warmup_s"),
    ],
)
def test_bad_paired_input_is_one_line_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    done = gate(tmp_path, *args, timeout=60)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--against", "HEAD", "--baseline", "main"], "takes no RUN, --baseline or --start-stack"),
        ([], "a RUN folder is needed, --start-stack to record one, or --against REF"),
    ],
)
def test_gate_without_one_mode_is_a_usage_error(
    tmp_path: Path, args: list[str], message: str
) -> None:
    done = gate(tmp_path, *args, timeout=60)
    assert done.returncode == 2 and "usage:" in done.stderr and message in done.stderr


def test_same_code_on_both_sides_passes_and_leaves_nothing(tmp_base: Path) -> None:
    """The plumbing and the clean-up of one pair. Its relative checks skip (one pair is too
    few to decide on: test_paired decides them on pairs it controls) and its fixed bounds
    (p95 < 500ms) are left out: whether two stacks loaded on this machine meet them depends
    on the machine, not on the code."""
    junit = tmp_base / "gate.xml"
    config = tmp_base / "gate.toml"
    config.write_text(without_absolute_checks((ROOT / "config" / "gate.toml").read_text()))
    done = gate(tmp_base, "--against", "HEAD", "--slices", "2", "--slice-seconds", "6",
                "--config", str(config), "--junit", str(junit))  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    # Progress per slice, baseline first in pair 1; then the verdict and the pair table.
    assert "slice 1/2 pair 1 baseline" in done.stdout
    assert "slice 2/2 pair 1 candidate" in done.stdout
    assert "Performance gate passed" in done.stdout and "### Pairs" in done.stdout
    assert len(list(JUnitXml.fromfile(str(junit)))) > 0
    assert leftovers(tmp_base) == []  # REF's export and both stacks' state removed


def command_of(process: psutil.Process) -> str:
    """Its command line; "" once it has ended (a zombie not yet reaped has none to read)."""
    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return ""


def test_ctrl_c_stops_both_stacks_and_removes_the_export(tmp_base: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "analysis", "gate", "--against", "HEAD", "--slices", "2",
         "--slice-seconds", "30"],
        cwd=ROOT, env={**os.environ, "TMPDIR": str(tmp_base)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        gate_process = psutil.Process(proc.pid)
        started: list[psutil.Process] = []
        deadline = time.monotonic() + 240
        # Wait until the first slice's Locust runs: both stacks are up by then.
        while time.monotonic() < deadline and proc.poll() is None:
            started = gate_process.children(recursive=True)
            if any("locust" in command_of(p) for p in started):
                break
            time.sleep(0.5)
        assert proc.poll() is None, proc.communicate()
        assert len(started) > 4  # two stack orchestrators, their parts, Locust
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, out + err
    assert "interrupted: both stacks stopped" in err
    _, alive = psutil.wait_procs(started, timeout=10)
    assert alive == [], [command_of(p) for p in alive]
    assert leftovers(tmp_base) == []


@pytest.mark.slow
def test_slow_list_regression_is_caught(tmp_base: Path) -> None:
    """The gate's reason to exist: the slow-list switch fails it, on /api/vods (~4 min).

    9 pairs, so one pair disturbed by whatever else runs on the box cannot hide it (the
    sign test then needs 8 of 9 pairs worse, with 6 pairs it needs all six)."""
    done = gate(tmp_base, "--against", "HEAD", "--slices", "18", "--slice-seconds", "8",
                "--candidate-regression", "slow-list")  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "| ❌ FAIL | `/api/vods: p95 +25%`" in done.stdout, done.stdout
    assert leftovers(tmp_base) == []

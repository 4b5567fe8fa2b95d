"""`kill -TERM` of a headless Locust run: it must end cleanly and keep what it measured.

The experiment runner stops Locust with SIGTERM (and so does a Ctrl-C of `make demo`), so a
run SIGTERMed halfway must leave a readable Parquet, its ledger and a finished meta.json.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pyarrow.parquet as pq
import pytest

from tests.locustfiles.conftest import REPO_ROOT

CREATES = 3  # VODs created by the load before the SIGTERM


def vods_created(database_url: str) -> int:
    """How many VODs were ever inserted (the id sequence: deletes do not lower it)."""
    with psycopg.connect(database_url, connect_timeout=5) as conn:
        row = conn.execute("SELECT last_value, is_called FROM vods_id_seq").fetchone()
    assert row is not None
    return int(row[0]) if row[1] else 0


def sigtermed_run(args: list[str], run_dir: Path, database_url: str) -> tuple[int, str]:
    """Start `locust ARGS`, SIGTERM it once its load has created a few VODs; (exit code,
    stderr).

    The whole process group is SIGKILLed if it is still there at the end, so nothing is left.
    """
    before = vods_created(database_url)
    cmd = [sys.executable, "-m", "locust", *args, "--run-dir", str(run_dir), "--only-summary"]
    proc = subprocess.Popen(
        cmd,
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while vods_created(database_url) < before + CREATES:
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "the load never created VODs"
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        return proc.returncode, err
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()


@pytest.mark.parametrize("shape", ["none", "step"])
def test_a_sigtermed_headless_run_ends_cleanly_and_keeps_its_files(
    stack, tmp_path: Path, shape: str
) -> None:
    shapes = tmp_path / "shapes.toml"  # steps far longer than the test: it never ends by itself
    shapes.write_text(
        "[step]\nstart_users = 3\nstep_users = 1\nstep_s = 60\nsteps = 2\nspawn_rate = 10\n"
    )
    run_dir = tmp_path / "run"
    args = ["-f", "locustfiles/vod.py", "VodEditor", "--headless", "-u", "3", "-r", "3"]
    args += ["-t", "60s", "-T", "db", "--stop-timeout", "5"]  # as the experiment runner does
    args += ["--shape", shape, "--shapes-file", str(shapes)]
    args += ["--host", stack.api_url, "--cablecast-url", stack.cablecast_url]

    code, err = sigtermed_run(args, run_dir, stack.database_url)

    assert code == 0, err[-3000:]  # not 143: Locust's handler ran, not the default action
    assert "Got SIGTERM signal" in err
    [requests] = run_dir.glob("requests-*.parquet")
    rows = pq.read_table(requests).to_pandas()
    creates = rows[(rows["type"] == "POST") & (rows["name"] == "/api/vods") & rows["ok"]]
    [ledger] = run_dir.glob("ledger-*.jsonl")
    kinds = [json.loads(line)["kind"] for line in ledger.read_text().splitlines()]
    assert len(creates) > 0 and kinds.count("created") == len(creates)
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["end"] > meta["start"]
    if shape == "none":  # a plain run: the shape class is not in the way, nor in the log
        assert "Shape test" not in err

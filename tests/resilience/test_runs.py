"""Short experiments end to end on the real stack: one per link, one that must fail, and
interrupted runs (SIGINT, SIGKILL) that must leave no fault behind."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from analysis.resources import read_resources
from experiments.experiment_file import load_experiment
from experiments.runner import Outcome, execute, read_requests
from experiments.scorecard import render_report
from faults.client import FaultClient
from testbed.stack import Stack
from testbed.target import Target
from tests.conftest import process_group

from .conftest import run_args, run_experiment, run_experiments

REPO = Path(__file__).resolve().parents[2]

# 26 s of load: 4 s warm-up, 5 s before, 7 s fault, 6 s recovery allowance, 3 s after.
# The p95 bounds say "answers in seconds, not never" (a request held through the whole
# outage takes 7 s and more); tighter figures would judge the machine: with PostgreSQL
# down each database request waits out the pool's 2 s, and on a busy machine longer.
TEMPLATE = """
title = "{title}"
[load]
locustfile = "locustfiles/vod.py"
users = 6
spawn_rate = 6
duration = "{duration}"
warmup = "4s"
[[faults]]
link = "{link}"
toxic = "{toxic}"
{attributes}
at = "{at}"
for = "{length}"
[hypothesis]
error_rate = "< 5%"
other_errors = "< 1%"
p95_ms = "< 3000"
recovers_within = "6s"
sustained = "3s"
[hypothesis.during]
error_rate = "{during_errors}"
p95_ms = "{during_p95}"
[audit]
drain = "10s"
stuck_after = "120s"
"""


def experiment_file(tmp_path: Path, **values: str) -> Path:
    values = {
        "title": "test",
        "duration": "26s",
        "at": "9s",
        "length": "7s",
        "attributes": "",
        "during_errors": "<= 100%",
        "during_p95": "< 5000",
    } | values
    path = tmp_path / f"{values['link']}-{values['toxic']}.toml"
    path.write_text(TEMPLATE.format(**values))
    return path


def writes_inside(run_dir: Path, start: float, end: float) -> pd.DataFrame:
    """Writes sent well inside a fault window: ones sent in its last 2.5 s may wait out the
    pool's 2 s and succeed once the link is back, and cached reads never need the link."""
    df = read_requests(run_dir)
    inside = (df["t_start"] > start + 0.3) & (df["t_start"] < end - 2.5)
    return df[inside & df["type"].isin(["POST", "PATCH", "DELETE"])]


def run(path: Path, target: Target, tmp_path: Path) -> Outcome:
    return execute(load_experiment(path), tmp_path / "run", target, out=io.StringIO())


@pytest.mark.parametrize("link", ["postgres", "redis", "cablecast"])
def test_an_outage_on_each_link_is_survived_recovered_from_and_loses_nothing(
    link: str, target: Target, tmp_path: Path, journal_dir: Path
) -> None:
    outcome = run(experiment_file(tmp_path, link=link, toxic="down"), target, tmp_path)
    report = outcome.report
    [window] = report["windows"]
    assert window["link"] == link and window["what"] == f"{link} down"
    assert 6.5 < window["end"] - window["start"] < 8.5
    assert window["start"] - report["load_start"] == pytest.approx(9, abs=1)
    before, during, *_ = outcome.verdict.phases
    assert before.phase == "before" and during.phase == "during"
    assert before.stats.requests > 5 and during.stats.requests > 0
    if link in ("postgres", "redis"):  # every write needs both: the outage must show
        assert during.stats.errors > before.stats.errors == 0
        writes = writes_inside(tmp_path / "run", window["start"], window["end"])
        assert not writes["ok"].any(), writes  # none got through (there may be none: 6
        # users waiting out the pool's 2 s each send few requests in the 4 s judged)
    [recovery] = outcome.verdict.recoveries
    assert recovery.seconds is not None and 0 <= recovery.seconds <= 6, outcome.verdict
    assert outcome.audit is not None and outcome.audit.counts()["lost"] == 0, outcome.audit
    assert outcome.verdict.ok, render_report(report)
    saved = json.loads((tmp_path / "run" / "verdict.json").read_text())
    assert saved["verdict"]["recoveries"][0]["seconds"] == recovery.seconds
    with FaultClient(target.fault_url) as client:
        assert all(p.enabled and not p.toxics for p in client.proxies().values())


def test_two_worker_processes_are_judged_and_audited_as_one_process_is(
    target: Target, tmp_path: Path, journal_dir: Path
) -> None:
    """`workers = 2`: Locust's master and two workers; the faults, verdict and audit stay
    with the runner, and every request the workers made is in the run folder once."""
    path = experiment_file(tmp_path, link="redis", toxic="down")
    path.write_text(path.read_text().replace('warmup = "4s"\n', 'warmup = "4s"\nworkers = 2\n'))
    outcome = run(path, target, tmp_path)
    run_dir = tmp_path / "run"
    log = (run_dir / "locust.log").read_text()
    assert "--processes" not in log and "2 workers" in log.replace("(2 total)", "2 workers"), log
    stats = pd.read_csv(run_dir / "locust_stats.csv")  # Locust's own count, on the master
    http = stats[(stats["Name"] != "Aggregated") & (stats["Type"] != "WORKFLOW")]
    total = int(http["Request Count"].sum())
    assert total > 0 and len(read_requests(run_dir)) == total  # (WORKFLOW: its steps are in)
    [window] = outcome.report["windows"]
    assert window["link"] == "redis"
    assert [p.phase for p in outcome.verdict.phases][:2] == ["before", "during"]
    assert outcome.audit is not None and outcome.audit.counts()["lost"] == 0, outcome.audit
    assert outcome.audit.checked["vods"] > 0, outcome.audit  # the workers' ledgers reached it
    assert outcome.verdict.ok, render_report(outcome.report)


def test_workers_from_another_host_ship_everything_to_the_runners_run_folder(
    target: Target, tmp_path: Path, journal_dir: Path
) -> None:
    """`expect_workers = 1`: the runner's Locust is a master that waits for a worker
    started as on another host (its own folder and working directory); the worker's
    requests and acknowledged writes reach the runner's run folder over Locust's messages,
    so the verdict and the audit see them, and nothing is left in the worker's folder."""
    from testbed.ports import free_ports

    [port] = free_ports("127.0.0.1", 1)
    path = experiment_file(tmp_path, link="redis", toxic="down")
    spread = f"expect_workers = 1\nmaster_bind_port = {port}\nexpect_workers_wait_s = 60\n"
    path.write_text(path.read_text().replace('warmup = "4s"\n', f'warmup = "4s"\n{spread}'))
    elsewhere = tmp_path / "other-host"
    elsewhere.mkdir()
    worker = [
        sys.executable, "-m", "locust", "-f", str(REPO / "locustfiles" / "vod.py"), "--worker",
        "--master-host", "127.0.0.1", "--master-port", str(port),
    ]  # fmt: skip
    env = os.environ | {"LOADKIT_RUN_DIR": str(elsewhere / "run")}
    with (
        (elsewhere / "worker.log").open("w") as log,
        process_group(worker, cwd=elsewhere, env=env, stdout=log, stderr=subprocess.STDOUT) as proc,
    ):
        outcome = run(path, target, tmp_path)
        assert proc.wait(60) == 0, (elsewhere / "worker.log").read_text()[-3000:]
    run_dir = tmp_path / "run"
    meta = json.loads((run_dir / "meta.json").read_text())
    [sent] = meta["workers"].values()
    assert sent["ended"] == "normally", meta["workers"]
    requests = read_requests(run_dir)
    assert len(requests) > 0 and sent["rows_received"] == sent["rows_sent"]
    assert not list(elsewhere.rglob("requests-*.parquet"))  # nothing kept on "its" disk
    assert outcome.audit is not None and outcome.audit.checked["vods"] > 0, outcome.audit
    assert outcome.audit.counts()["lost"] == 0, outcome.audit
    assert [p.phase for p in outcome.verdict.phases][:2] == ["before", "during"]
    assert outcome.verdict.ok, render_report(outcome.report)


def test_a_hypothesis_the_service_cannot_meet_fails(
    target: Target, tmp_path: Path, journal_dir: Path
) -> None:
    path = experiment_file(
        tmp_path,
        link="postgres",
        toxic="latency",
        attributes="attributes = { latency = 300 }",
        during_errors="< 50%",
        during_p95="< 100",
    )
    outcome = run(path, target, tmp_path)
    during = outcome.verdict.phases[1]
    failed = [c for c in during.checks if not c.ok]
    assert [c.metric for c in failed] == ["p95_ms"]
    assert failed[0].value > 300  # the database answers 300 ms late, at least
    assert not outcome.verdict.ok and not outcome.ok


def wait_for_toxic(client: FaultClient, proxy: str, runner: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while not client.toxics(proxy):
        assert runner.poll() is None, runner.stderr.read().decode() if runner.stderr else ""
        assert time.monotonic() < deadline, "the runner never injected its fault"
        time.sleep(0.2)


def locust_of(run_dir: Path) -> list[str]:
    """Pids of Locust processes writing to this run folder."""
    out = subprocess.run(
        ["pgrep", "-f", "--", f"locust .*--run-dir {run_dir}"], capture_output=True, text=True
    )
    assert out.returncode in (0, 1), out.stderr  # 1: none found; anything else: pgrep failed
    return [p for p in out.stdout.split() if p]


def long_fault(tmp_path: Path) -> Path:
    return experiment_file(
        tmp_path,
        link="redis",
        toxic="latency",
        duration="60s",
        at="5s",
        length="40s",
        attributes="attributes = { latency = 50 }",
    )


@contextmanager
def runner_with_its_fault_in(
    client: FaultClient, target: Target, tmp_path: Path, journal: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """`experiments run` of long_fault into tmp_path/run, in a session of its own, handed to the
    test once its Redis fault is in place; whatever the test does, nothing of it outlives
    the block."""
    env = os.environ | {"TOXIPROXY_URL": target.fault_url, "LOADKIT_FAULTS_JOURNAL": str(journal)}
    args = run_args(long_fault(tmp_path), target, tmp_path / "run", "--no-audit")
    command = [sys.executable, "-m", "faults", *args]
    with process_group(
        command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    ) as runner:
        wait_for_toxic(client, "redis", runner)
        yield runner


def test_ctrl_c_removes_the_fault_and_stops_locust(
    target: Target, tmp_path: Path, journal_dir: Path
) -> None:
    run_dir = tmp_path / "run"
    with FaultClient(target.fault_url) as client:
        with runner_with_its_fault_in(client, target, tmp_path, journal_dir) as runner:
            runner.send_signal(signal.SIGINT)
            assert runner.wait(60) == 130
        assert client.toxics("redis") == []
    [window] = [json.loads(line) for line in (run_dir / "faults.jsonl").read_text().splitlines()]
    assert window["link"] == "redis" and "rolled back" in window["what"]
    assert locust_of(run_dir) == []
    assert list(journal_dir.glob("*.jsonl")) == []
    assert_locust_kept_its_files(run_dir)


def assert_locust_kept_its_files(run_dir: Path) -> None:
    """Locust, stopped with SIGTERM by the runner, closed its capture and flushed its ledger."""
    assert "Got SIGTERM signal" in (run_dir / "locust.log").read_text()
    [requests] = run_dir.glob("requests-*.parquet")
    rows = pq.read_table(requests).to_pandas()  # readable: the file was closed
    assert len(rows) > 0
    creates = rows[(rows["type"] == "POST") & (rows["name"] == "/api/vods") & rows["ok"]]
    ledger = [json.loads(line) for p in run_dir.glob("ledger-*.jsonl") for line in p.open()]
    assert sum(e["kind"] == "created" for e in ledger) == len(creates)
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["end"] > meta["start"]


def test_a_sigkilled_runner_leaves_a_journal_that_cleanup_uses(
    target: Target, tmp_path: Path, journal_dir: Path
) -> None:
    run_dir = tmp_path / "run"
    with FaultClient(target.fault_url) as client:
        with runner_with_its_fault_in(client, target, tmp_path, journal_dir) as runner:
            runner.kill()  # SIGKILL: no handler, no finally
            runner.wait(10)
        assert [t.type for t in client.toxics("redis")] == ["latency"]  # left behind
        deadline = time.monotonic() + 30  # Locust follows its parent (PR_SET_PDEATHSIG)
        while locust_of(run_dir) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert locust_of(run_dir) == []
        cleaned = run_experiments(
            "cleanup", env=os.environ | {"LOADKIT_FAULTS_JOURNAL": str(journal_dir)}
        )
        assert cleaned.returncode == 0, cleaned.stderr
        assert "removed latency latency=50 on redis" in cleaned.stdout
        assert client.toxics("redis") == []
    assert "left behind; removed by cleanup" in (run_dir / "faults.jsonl").read_text()


def test_an_external_archivist_is_run_and_audited_through_the_environment(
    target: Target, clean_faults: Stack, tmp_path: Path, journal_dir: Path
) -> None:
    path = experiment_file(
        tmp_path,
        link="cablecast",
        toxic="latency",
        attributes="attributes = { latency = 100 }",
        during_errors="< 5%",
        during_p95="< 1500",
    )
    run_dir = tmp_path / "run"
    done = run_experiment(path, target, run_dir, "--app-log", str(clean_faults.log_dir / "api.log"))
    report = json.loads((run_dir / "verdict.json").read_text())
    assert done.returncode == (0 if report["ok"] else 1), done.stderr
    assert report["target"] == target.api_url
    audit = report["audit"]
    assert audit["checked"]["vods"] > 0 and "cached" in audit["checked"]
    assert audit["notes"] == []  # database, cache, job stream and Cablecast all audited
    assert "verdict: " in done.stdout and "audit: lost" in done.stdout
    # The app's log given with --app-log is kept with the run, for its findings (none here).
    assert (run_dir / "app-logs" / "api.log").stat().st_size > 0
    assert report["findings"] == [] and "findings: none" in done.stdout
    # --host with DATABASE_URL and REDIS_URL: both sampled for the whole load, no processes
    resources = read_resources(run_dir)
    assert set(resources["source"]) == {"postgres", "redis"}, done.stderr
    assert resources["t"].max() - resources["t"].min() >= 20  # the load's 26 s, one a second
    assert "resources: " in done.stderr and "samples of postgres, redis" in done.stderr

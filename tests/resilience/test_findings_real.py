"""Findings on real runs against the reference stack, in both directions: a planted defect
is found, and a healthy run (or a graceful outage) yields none."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import httpx
import numpy as np

from analysis.cli import main as analysis_main
from analysis.findings import SLOW, UNGRACEFUL
from analysis.findings_run import APP_LOG_DIR, run_findings
from analysis.load import read_requests
from experiments.cli import findings_text
from experiments.experiment_file import load_experiment
from experiments.runner import execute
from testbed.api.client import ArchivistClient
from testbed.stack import Stack
from testbed.target import Target
from testbed.throwaway_stack import stack_app_logs
from tests.conftest import retrying_503
from tests.locustfiles.conftest import run_locust
from tests.resilience.test_runs import experiment_file
from tests.testbed.test_api_regression import companion_api

CONTRACT = Path(__file__).resolve().parents[2] / "config" / "routes" / "contract.toml"


def list_p50_ms(run_dir: Path) -> float:
    requests = read_requests(run_dir)
    lists = requests[(requests["name"].astype(str) == "/api/vods") & (requests["type"] == "GET")]
    assert len(lists) >= 10, "the workload listed too little to judge"
    return float(np.median(lists["latency_us"].to_numpy()) / 1000.0)


# Pages of 50, as tests/testbed/test_api_regression.py lists: the workload's own mix
# (small pages, filters, searches) shows the regression in its tail more than its median.
LISTER = """
from locust import constant, task
from workload.users import ArchivistUser


class Lister(ArchivistUser):
    wait_time = constant(0.05)

    @task
    def browse(self) -> None:
        self.api.list_vods(limit=50)

    @task
    def health(self) -> None:
        self.api.send("health", authed=False)
"""


def browse(api_url: str, run_dir: Path) -> None:
    """12 s of two people listing VODs through the workload's API client (lister.py beside
    run_dir, written by write_lister)."""
    locustfile = run_dir.parent / "lister.py"
    options = ["--headless", "-u", "2", "-r", "2", "-t", "12s", "--stop-timeout", "5"]
    result = run_locust(["-f", str(locustfile), *options, "--host", api_url], run_dir)
    assert result.returncode == 0, result.stderr[-2000:]


def write_lister(folder: Path) -> None:
    (folder / "lister.py").write_text(LISTER)


def profile_with(tmp_path: Path, findings: str) -> str:
    """The contract profile with another [findings] section."""
    text = CONTRACT.read_text().split("\n[findings]")[0]
    path = tmp_path / "profile.toml"
    path.write_text(text + "\n" + findings)
    return str(path)


def test_the_slow_list_regression_is_found_and_a_normal_run_has_no_finding(
    clean_faults: Stack, tmp_path: Path
) -> None:
    stack = clean_faults
    with ArchivistClient(stack.api_url, timeout=30) as api:
        retrying_503(api.login)
        for n in range(60):  # enough rows that the regression's per-row reads show
            retrying_503(partial(api.create_vod, title=f"findings row {n}"))
    # The normal run (the stack's API) and the slow one (a second API of the stack, with
    # slow-list) at the same time: on a busy machine, one run after the other may meet
    # different loads, and the limit below is taken from the normal run.
    write_lister(tmp_path)
    slow_env = {"ARCHIVIST_REGRESSION": "slow-list"}
    with (
        companion_api(stack, slow_env, tmp_path / "api-slow-list.log") as slow_url,
        ThreadPoolExecutor(max_workers=2) as runs,
    ):
        assert httpx.get(f"{slow_url}/api/health", timeout=10).json()["regression"] == "slow-list"
        both = [
            runs.submit(browse, stack.api_url, tmp_path / "normal"),
            runs.submit(browse, slow_url, tmp_path / "slow"),
        ]
        for run in both:
            run.result()
    # The shipped profile finds nothing wrong with the stack as it is.
    normal = run_findings(tmp_path / "normal")
    assert normal.rules.profile == "contract"
    assert normal.table.empty, normal.table.to_string()

    normal_ms, slow_ms = list_p50_ms(tmp_path / "normal"), list_p50_ms(tmp_path / "slow")
    print(f"GET /api/vods p50: normal {normal_ms:.1f} ms, slow-list {slow_ms:.1f} ms")
    # A limit twice the normal median: slow-list (at least twice as slow, see
    # tests/testbed/test_api_regression.py) must cross it, the normal run must not.
    limit = 2 * normal_ms
    profile = profile_with(tmp_path, f"[findings.route_slow_ms]\nlist_vods = {limit:.3f}\n")
    assert run_findings(tmp_path / "normal", routes=profile).table.empty
    slow = run_findings(tmp_path / "slow", routes=profile).table
    assert list(slow["kind"]) == [SLOW], slow.to_string()
    row = slow.iloc[0]
    assert row.endpoint == "GET /api/vods" and row.status == 200
    assert row.detail.startswith(f"p50 {slow_ms:.0f} ms > ")
    assert 0 < row["count"] <= row.requests and row.fault == "no fault"
    # The command line says the same, and fails on it when asked.
    assert analysis_main(["findings", str(tmp_path / "slow"), "--routes", profile]) == 0
    args = ["findings", str(tmp_path / "slow"), "--routes", profile, "--fail-on-findings"]
    assert analysis_main(args) == 1
    assert analysis_main([*args[:-3], "--fail-on-findings"]) == 0  # the shipped limits


def test_a_redis_outage_answered_with_json_503s_is_no_finding_unless_503_is_not_expected(
    clean_faults: Stack, tmp_path: Path, journal_dir: Path
) -> None:
    s = clean_faults
    target = Target(
        s.api_url,
        s.fault_url,
        s.cablecast_url,
        s.database_url,
        s.redis_url,
        app_logs=stack_app_logs(s.log_dir),
    )
    path = experiment_file(tmp_path, link="redis", toxic="down")
    outcome = execute(load_experiment(path), tmp_path / "run", target, out=io.StringIO())
    run = tmp_path / "run"
    [window] = outcome.report["windows"]
    during = outcome.verdict.phases[1]
    assert during.phase == "during" and during.stats.error_rate > 0.2  # the outage showed

    # The stack answers 503 with a JSON error while Redis is down: graceful, no finding.
    assert outcome.report["findings"] == [], outcome.report["findings"]
    assert findings_text(outcome.report) == "findings: none"
    assert sorted(p.name for p in (run / APP_LOG_DIR).iterdir()) == ["api.log", "worker.log"]

    # The same run judged by a profile that expects 502 during outages: the 503s are
    # ungraceful, inside the Redis window, and the API's log says why.
    profile = profile_with(tmp_path, "[findings]\noutage_status = [502]\n")
    table = run_findings(run, routes=profile).table
    assert len(table) > 0 and set(table["kind"]) == {UNGRACEFUL}, table.to_string()
    assert set(table["status"]) == {503}
    health = table["endpoint"] == "GET /api/health"  # its 503 body is the health report
    assert set(table[~health]["shape"]) == {"json error"}
    assert set(table[health]["shape"]) <= {"json"}
    assert set(table["fault"]) == {"redis down"}
    first = table[~health].sort_values("first_at").iloc[0]  # a route that logs its 503
    assert window["start"] - 1 <= first.first_at <= window["end"] + 10
    assert first.log_source == "api.log" and "redis unavailable" in first.log_line, first

    # The HTML report of the run shows the Findings section (none, with the shipped profile).
    out = tmp_path / "report.html"
    assert analysis_main(["report", str(run), "--out", str(out)]) == 0
    html = out.read_text()
    assert "<h2>Findings</h2>" in html and "None: no 5xx outside faults" in html

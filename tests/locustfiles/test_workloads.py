"""The workloads against the real reference stack: short headless Locust runs, then their results.

Each run is a subprocess (as a person would start it); the assertions read Locust's CSV,
the capture plug-in's Parquet, the ledger files, and the stack's PostgreSQL directly.
"""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from experiments.audit_contract import expectations, fetch_rows, judge, read_ledger
from experiments.experiment import Audit
from faults.embedded import free_port
from tests.conftest import process_group
from tests.locustfiles.conftest import (
    REPO_ROOT,
    STOP_PLUGIN,
    LocustRun,
    processes_args,
    run_locust,
)

ALL_FILES = "locustfiles/vod.py,locustfiles/auth.py,locustfiles/invalid.py"
# Read as data: importing locustfiles.invalid would import Locust, whose gevent
# monkey-patching must not happen inside the pytest process.
CASE_NAMES = {
    c["name"]
    for c in tomllib.loads((REPO_ROOT / "config" / "workload.toml").read_text())["invalid"]["cases"]
}


def target(stack) -> list[str]:
    return [
        "--host", stack.api_url,
        "--cablecast-url", stack.cablecast_url,
        "--faults-url", stack.fault_url,
    ]  # fmt: skip


def meta_of(run: LocustRun) -> dict:
    return json.loads((run.run_dir / "meta.json").read_text())


Counts = dict[tuple[str, str], tuple[int, int]]  # (type, name) -> (requests, failures)


def live_counts(prefix: Path) -> Counts:
    """What `<prefix>_stats.csv` says so far ({} while it cannot be read): Locust rewrites
    it every second and flushes it every 5 s, so it lags the run by a few seconds."""
    try:
        with open(f"{prefix}_stats.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        return {
            (r["Type"], r["Name"]): (int(r["Request Count"]), int(r["Failure Count"]))
            for r in rows
            if r["Name"] != "Aggregated"
        }
    except (OSError, csv.Error, KeyError, ValueError, TypeError):
        return {}


def load_started_at(run_dir: Path) -> float | None:
    """Epoch second the load started (meta.json `start`, written at test start), or None."""
    try:
        start = json.loads((run_dir / "meta.json").read_text()).get("start")
        return float(start) if start else None
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def sent_each(*keys: tuple[str, str]) -> Callable[[Counts], bool]:
    """`enough` for run_locust_until: each of `keys` was sent at least once."""
    return lambda counts: all(counts.get(key, (0, 0))[0] > 0 for key in keys)


def run_locust_until(
    args: list[str],
    run_dir: Path,
    enough: Callable[[Counts], bool],
    at_least_s: float,
    at_most_s: float = 60.0,
) -> LocustRun:
    """`locust ARGS` (headless, no -t of its own) for a load that must have sent enough to be
    judged: its load runs at least `at_least_s` (counted as -t counts, from the load's start:
    a slow start-up does not shorten it), then until its stats satisfy `enough`, and then
    ends as at its -t (STOP_PLUGIN). A busy machine gets the longer run it needs;
    `at_most_s` (the run's -t) bounds it when `enough` never holds, and the assertions then
    say what is missing.

    The same as conftest.run_locust otherwise: `--run-dir`, `--csv RUN_DIR/stats`, its own
    process group, killed (the whole group) if it outlives its -t by a minute.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    prefix = run_dir / "stats"
    with (
        tempfile.TemporaryDirectory(prefix="locust-stop-") as aside,
        tempfile.TemporaryFile("w+") as out,
        tempfile.TemporaryFile("w+") as err,
    ):
        plugin, stop_file = Path(aside) / "stop_when_told.py", Path(aside) / "stop"
        plugin.write_text(STOP_PLUGIN)
        where = args.index("-f") + 1
        args = [*args[:where], f"{args[where]},{plugin}", *args[where + 1 :]]
        cmd = [sys.executable, "-m", "locust", *args, "-t", f"{at_most_s:g}s"]
        cmd += ["--run-dir", str(run_dir), "--csv", str(prefix)]
        env = {**os.environ, "LOADKIT_SEED": "7", "LOADKIT_TEST_STOP_FILE": str(stop_file)}
        with process_group(
            cmd, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=out, stderr=err, text=True,
            env=env,
        ) as proc:  # fmt: skip
            started = time.monotonic()
            while proc.poll() is None:
                load_start = load_started_at(run_dir)
                ran = time.time() - load_start if load_start is not None else 0.0
                if ran >= at_least_s and enough(live_counts(prefix)):
                    stop_file.touch()
                    break
                time.sleep(0.25)
            try:
                proc.wait(at_most_s + 60 - (time.monotonic() - started))
            except subprocess.TimeoutExpired:
                err.seek(0)
                pytest.fail(
                    f"locust {' '.join(args)} ran over {at_most_s + 60:g}s\n" + err.read()[-3000:]
                )
        took = time.monotonic() - started
        try:
            meta = json.loads((run_dir / "meta.json").read_text())
            ran_s = f"{float(meta['end']) - float(meta['start']):.1f}"
        except (OSError, ValueError, KeyError, TypeError):
            ran_s = "?"
        print(
            f"\n{run_dir.name}: load ran {ran_s} s (at least {at_least_s:g}), {took:.1f} s in all"
        )
        out.seek(0)
        err.seek(0)
        return LocustRun(proc.returncode, out.read(), err.read(), run_dir, prefix)


# Keys only the mixed run sends (test_every_area_ran takes them from all three runs).
MIXED_ONLY = (
    ("GET", "/api/vods/[id]"),
    ("GET", "/api/auth/me"),
    ("POST", "login (locked out)"),
)
# Requests that make the API or the worker reach Cablecast (test_bytes_per_link_...).
TO_CABLECAST = (("GET", "/api/health"), ("GET", "/api/shows"), ("POST", "/api/vods/[id]/process"))


@pytest.fixture(scope="module")
def mixed(stack, tmp_path_factory) -> LocustRun:
    """All three workloads together: 12 users (every user class), about 20 s: longer on a
    busy machine, until the InvalidInput user has walked the whole table (about 8 s
    unloaded) and the areas only this run covers have been sent."""
    run_dir = tmp_path_factory.mktemp("mixed")
    args = ["-f", ALL_FILES, "--headless", "-u", "12", "-r", "12", *target(stack)]
    others = sent_each(*MIXED_ONLY)

    def enough(counts: Counts) -> bool:  # each case has its own name, whatever its method
        cases = {name for (_, name), (n, _) in counts.items() if n}
        cablecast = any(counts.get(key, (0, 0))[0] for key in TO_CABLECAST)
        return {f"invalid: {c}" for c in CASE_NAMES} <= cases and others(counts) and cablecast

    return run_locust_until(args, run_dir, enough, at_least_s=20)


@pytest.fixture(scope="module")
def phase(stack, tmp_path_factory) -> LocustRun:
    """Only the `external` and `system` tags of the VOD workload (`-T`), 3 users, about
    12 s (longer on a busy machine, until an upload->published workflow has ended), with
    the contract's route profile named explicitly."""
    run_dir = tmp_path_factory.mktemp("phase")
    args = ["-f", "locustfiles/vod.py", "VodEditor", "--headless", "-u", "3", "-r", "3"]
    args += ["--routes", "contract", "-T", "external", "system", *target(stack)]
    enough = sent_each(
        ("WORKFLOW", "upload->published"), ("GET", "/api/health"), ("GET", "/api/shows")
    )
    return run_locust_until(args, run_dir, enough, at_least_s=12)


@pytest.fixture(scope="module")
def two_processes(stack, tmp_path_factory) -> LocustRun:
    """6 users of the `db` tag on two worker processes for 20 s, ended by -t. Not stopped
    early by SIGTERM as the single-process runs are: the master's SIGTERM can end its
    workers before they write their ledgers and captures (seen under load: neither file).
    20 s is twice what one create per process ever needed here (8 creates land in one
    process about 1 run in 128)."""
    run_dir = tmp_path_factory.mktemp("processes")
    args = ["-f", "locustfiles/vod.py", "--headless", "-u", "6", "-r", "6", "-t", "20s"]
    args += [*processes_args(2), "-T", "db", *target(stack)]
    return run_locust(args, run_dir, timeout=150)


def test_mixed_run_has_no_failures(mixed: LocustRun) -> None:
    assert mixed.returncode == 0, mixed.stderr[-3000:]
    failed = {k: v for k, v in mixed.counts().items() if v[1]}
    assert not failed, mixed.failures()


def test_every_area_ran(mixed: LocustRun, phase: LocustRun, two_processes: LocustRun) -> None:
    runs = (mixed, phase, two_processes)
    ran = {k for run in runs for k, (n, _) in run.counts().items() if n > 0}
    areas = {
        "db": ("POST", "/api/vods"),
        "db (edit)": ("PATCH", "/api/vods/[id]"),
        "api": ("GET", "/api/vods/[id]"),
        "external": ("WORKFLOW", "upload->published"),
        "external (shows)": ("GET", "/api/shows"),
        "system": ("GET", "/api/health"),
        "auth": ("GET", "/api/auth/me"),
        "auth (lock-out)": ("POST", "login (locked out)"),
        "invalid": ("POST", "invalid: malformed JSON"),
    }
    missing = {area: key for area, key in areas.items() if key not in ran}
    assert not missing, f"no requests for {missing}; ran: {sorted(ran)}"


def test_tag_selects_a_phase(phase: LocustRun) -> None:
    assert phase.returncode == 0, phase.stderr[-3000:]
    ran = set(phase.counts())
    assert ("WORKFLOW", "upload->published") in ran and ("GET", "/api/health") in ran
    others = {("GET", "/api/vods/[id]"), ("PATCH", "/api/vods/[id]"), ("GET", "/api/vods")}
    assert not ran & others, f"tasks of other tags ran: {ran & others}"
    assert not any(n for _, n in phase.counts().values()), phase.failures()


def test_workflow_entries_have_percentiles(phase: LocustRun) -> None:
    row = next(r for r in phase.stats() if r["Type"] == "WORKFLOW")
    assert int(row["Request Count"]) >= 1 and int(row["Failure Count"]) == 0
    # Locust buckets percentiles to ~2 significant digits, hence the 10 % slack on max.
    assert 0 < float(row["50%"]) <= float(row["95%"]) <= 1.1 * float(row["Max Response Time"])


def test_invalid_user_covers_the_table_with_exact_statuses(mixed: LocustRun) -> None:
    invalid = {n: v for (_, n), v in mixed.counts().items() if n.startswith("invalid: ")}
    assert {f"invalid: {name}" for name in CASE_NAMES} == set(invalid), "cases that never ran"
    assert not {n: f for n, (_, f) in invalid.items() if f}, mixed.failures()


def test_open_model_records_the_intended_start(mixed: LocustRun) -> None:
    table = pq.read_table(next(iter(mixed.run_dir.glob("requests-*.parquet")))).to_pylist()
    scheduled = [r for r in table if not math.isnan(r["intended_start"])]
    # One OpenModelReader at 2 requests/s: Poisson, about 40 in the run's 20 s (it runs
    # longer on a busy machine), so 0.75 to 4 a second.
    meta = meta_of(mixed)
    seconds = float(meta["end"]) - float(meta["start"])
    assert 0.75 * seconds <= len(scheduled) <= 4.0 * seconds, (len(scheduled), seconds)
    late = [r for r in scheduled if r["t_start"] < r["intended_start"] - 0.05]
    assert not late, f"sent before they were due: {late[:3]}"


def test_ledger_matches_the_database(
    stack, mixed: LocustRun, phase: LocustRun, two_processes: LocustRun
) -> None:
    entries = [e for run in (mixed, phase, two_processes) for e in read_ledger(run.run_dir)]
    kinds = {e["kind"] for e in entries}
    assert {"created", "updated", "deleted", "published"} <= kinds, kinds
    expected = expectations(sorted(entries, key=lambda e: float(e["ts"])))
    rows = fetch_rows(stack.database_url, sorted(expected))
    result = judge(expected, rows, None, None, None, time.time(), Audit())
    assert result.lost == [] and result.inconsistent == [], result.to_json()


def test_a_contract_run_exercises_every_route_its_tasks_use(
    mixed: LocustRun, phase: LocustRun, two_processes: LocustRun
) -> None:
    """Nothing skipped, no class silent; with --processes the workers' tallies add up."""
    for run in (mixed, phase, two_processes):
        coverage = meta_of(run)["coverage"]
        assert coverage["problems"] == [] and coverage["skipped"] == [], coverage
    tasks = meta_of(two_processes)["coverage"]["tasks"]
    assert tasks["VodEditor.create"]["sent"] >= 1 and tasks["VodEditor.browse"]["sent"] >= 1
    assert meta_of(two_processes)["coverage"]["users"] == {"VodEditor": 6}


def test_bytes_per_link_are_recorded_in_meta(mixed: LocustRun, phase: LocustRun) -> None:
    links = meta_of(mixed)["links"]
    assert set(links) == {"postgres", "redis", "cablecast"}
    # Every link carried traffic both ways: VOD rows, sessions and cache, publications.
    assert all(n > 0 for d in links.values() for n in d.values()), links
    assert meta_of(mixed)["links_source"] == mixed_fault_url(mixed)


def mixed_fault_url(run: LocustRun) -> str:
    return str(meta_of(run)["options"]["faults_url"])


HEALTH_ONLY = """\
name = "health-only"
[auth]
mode = "none"
[health]
route = "health"
[routes]
health = "GET /api/health"
"""


def test_a_profile_whose_routes_differ_lists_what_it_skipped_and_fails(
    stack, tmp_path: Path
) -> None:
    """A deployment with only a health route, driven by the contract's users (the profile
    names no users of its own): most tasks need routes it lacks."""
    profile = tmp_path / "health-only.toml"
    profile.write_text(HEALTH_ONLY)
    args = ["-f", "locustfiles/vod.py", "--headless", "-u", "5", "-r", "5", "-t", "6s"]
    run = run_locust([*args, "--routes", str(profile), *target(stack)], tmp_path / "run")
    assert run.returncode == 1, run.stderr[-3000:]
    # In the log, as it happens ...
    assert (
        "task OpenModelReader.read_listing skipped: needs route 'list_vods', "
        "not in profile 'health-only'"
    ) in run.stderr
    # ... in the summary at the end ...
    assert "skipped: OpenModelReader.read_listing: skipped " in run.stderr
    errors = [line for line in run.stderr.splitlines() if "error: the workload was silent" in line]
    assert len(errors) == 1, run.stderr[-3000:]
    assert "user class OpenModelReader sent no request" in errors[0]
    # ... and in the run's meta.json, for the reports.
    coverage = meta_of(run)["coverage"]
    assert any(s.startswith("OpenModelReader.read_listing: skipped") for s in coverage["skipped"])
    assert any("OpenModelReader sent no request" in p for p in coverage["problems"])


def test_allow_silent_lists_the_silence_but_does_not_fail_the_run(stack, tmp_path: Path) -> None:
    """For measurement slices (the paired gate): the same silent run, listed, exit 0."""
    profile = tmp_path / "health-only.toml"
    profile.write_text(HEALTH_ONLY)
    args = ["-f", "locustfiles/vod.py", "--headless", "-u", "5", "-r", "5", "-t", "6s"]
    run = run_locust(
        [*args, "--routes", str(profile), "--allow-silent", *target(stack)], tmp_path / "run"
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "the workload was silent (--allow-silent): user class OpenModelReader" in run.stderr
    assert "error: the workload was silent" not in run.stderr
    assert any("OpenModelReader sent no request" in p for p in meta_of(run)["coverage"]["problems"])


def test_two_processes_write_one_ledger_each(two_processes: LocustRun) -> None:
    assert two_processes.returncode == 0, two_processes.stderr[-3000:]
    ledgers = sorted(two_processes.run_dir.glob("ledger-*.jsonl"))
    captures = sorted(two_processes.run_dir.glob("requests-*.parquet"))
    assert len(ledgers) == 2 and len(captures) == 2, (ledgers, captures)
    assert {p.stem.split("-")[1] for p in ledgers} == {p.stem.split("-")[1] for p in captures}
    assert not any(f for _, f in two_processes.counts().values()), two_processes.failures()


def test_shape_runs_headless_and_ends_by_itself(stack, tmp_path: Path) -> None:
    shapes = tmp_path / "shapes.toml"
    shapes.write_text(
        "[step]\nstart_users = 1\nstep_users = 1\nstep_s = 2\nsteps = 3\nspawn_rate = 10\n"
    )
    args = ["-f", "locustfiles/vod.py", "VodEditor", "--headless", "--shape", "step"]
    started = time.monotonic()
    run = run_locust([*args, "--shapes-file", str(shapes), *target(stack)], tmp_path / "run", 60)
    assert run.returncode == 0, run.stderr[-3000:]
    assert time.monotonic() - started < 45
    users = [int(r["User Count"]) for r in run.history()]
    assert max(users) == 3, users


def test_bad_shape_config_is_a_clear_error(stack, tmp_path: Path) -> None:
    shapes = tmp_path / "shapes.toml"
    shapes.write_text("[step]\nstart_users = 1\n")
    args = ["-f", "locustfiles/vod.py", "--headless", "--shape", "step"]
    run = run_locust([*args, "--shapes-file", str(shapes), *target(stack)], tmp_path / "run", 60)
    assert run.returncode != 0
    assert "step.step_users" in run.stderr and "Traceback" not in run.stderr


def test_web_ui_offers_the_custom_arguments(stack, tmp_path: Path) -> None:
    port = free_port()
    cmd = [sys.executable, "-m", "locust", "-f", "locustfiles/vod.py", *target(stack)]
    cmd += ["--web-host", "127.0.0.1", "--web-port", str(port), "--run-dir", str(tmp_path)]
    proc = subprocess.Popen(
        cmd,
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        page = ""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not page:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as resp:
                    page = resp.read().decode()
            except OSError:
                time.sleep(0.3)
        assert page, "the web UI did not answer"
        for option in ('"shape"', '"routes"', '"arrival_rate"', "spike", "soak"):
            assert option in page, f"{option} not offered in the web UI"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_no_host_and_no_stack_says_how_to_start_it(tmp_path: Path) -> None:
    config = tmp_path / "stack.toml"
    config.write_text(f'host = "127.0.0.1"\n[ports]\napi = {free_port()}\ncablecast = 1\n')
    args = ["-f", "locustfiles/vod.py", "--headless", "-u", "1", "-t", "2s"]
    run = run_locust([*args, "--stack-config", str(config)], tmp_path / "run", 60)
    assert run.returncode == 2
    assert "make up" in run.stderr and "python -m testbed up" in run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.slow
def test_start_stack_starts_and_stops_its_own_stack(tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("api", "fault_api", "postgres", "redis", "cablecast")}
    proxies = {name: free_port() for name in ("postgres", "redis", "cablecast")}
    config = tmp_path / "stack.toml"
    config.write_text(
        f'host = "127.0.0.1"\nstate_dir = "{tmp_path / "state"}"\n[ports]\n'
        + "".join(f"{k} = {v}\n" for k, v in ports.items())
        + "[proxy_ports]\n"
        + "".join(f"{k} = {v}\n" for k, v in proxies.items())
    )
    args = ["-f", "locustfiles/vod.py", "VodEditor", "--headless", "-u", "2", "-r", "2"]
    run = run_locust([*args, "-t", "5s", "--stack-config", str(config), "--start-stack"], tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.counts()[("POST", "/api/auth/login")] == (2, 0)
    with pytest.raises(OSError):  # the stack it started is gone again
        urllib.request.urlopen(f"http://127.0.0.1:{ports['api']}/api/health", timeout=2)

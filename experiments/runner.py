"""Run one experiment: load with Locust, faults on a timeline, then audit and verdict.

The runner is the only process that injects faults (Locust runs as a child; its workers
never touch the fault server). Whatever happens - success, a failed check, Ctrl-C,
SIGTERM, an exception - every injected fault is removed before the runner returns, and a
SIGKILLed runner leaves a journal that `python -m experiments cleanup` (or the next run)
uses to remove what it left (see experiments.timeline).

Target: without `--host`, a reference stack (testbed) is started on free ports and
stopped at the end. With `--host`, the Archivist there is used, with the Toxiproxy of
`$TOXIPROXY_URL` and, for the audit, `$DATABASE_URL` (and `$REDIS_URL` if set).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pandas as pd

from analysis import load
from analysis.answers_run import AUDIT_FILE
from analysis.findings import to_records
from analysis.findings_run import APP_LOG_DIR, run_findings
from analysis.load import InputError
from analysis.resources import sampler_interval
from experiments import answer_truth
from experiments.audit import audit_for_profile, no_audit_note
from experiments.audit_contract import drain
from experiments.audit_result import AuditError, AuditResult, Sources
from experiments.capacity_run import capacity_report
from experiments.errors import RunError
from experiments.experiment import REPO_ROOT, Experiment
from experiments.locust_process import (
    TICK_S,
    locust_command,
    log_tail,
    start_locust,
    stop_locust,
    wait_for_start,
)
from experiments.progress import Progress, current_totals
from experiments.sampler import sampling
from experiments.timeline import Injector, Timeline, cleanup
from experiments.verdict import OutageDefect, Verdict, Window, evaluate
from faults.client import ENV_URL, FaultClient, FaultServerError
from faults.linkbytes import total
from testbed.target import Target
from workload.answer_rules import load_answer_checks, profile_file
from workload.routes import Profile
from workload.tomlconfig import ConfigError

STOP_GRACE_S = 60.0  # after the planned duration, before Locust is stopped by force
WORKFLOW_TYPE = "WORKFLOW"  # workload/users.py report_workflow: a timed sequence of requests
LOG_KEEP_BYTES = 20_000_000  # of each app log copied into the run folder


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    audit: AuditResult | None
    run_dir: Path
    report: dict[str, Any]

    @property
    def ok(self) -> bool:
        return self.verdict.ok and (self.audit is None or self.audit.ok)


def default_run_dir(experiment: Experiment) -> Path:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return REPO_ROOT / "runs" / f"{stamp}-{experiment.name}"


def external_target(host: str, app_logs: tuple[Path, ...] = ()) -> Target:
    """The target given by --host and the environment; RunError says what is missing."""
    fault_url = os.environ.get(ENV_URL)
    if not fault_url:
        raise RunError(
            f"--host {host} needs ${ENV_URL}: the Toxiproxy in front of that Archivist's "
            "postgres, redis and cablecast (e.g. TOXIPROXY_URL=http://127.0.0.1:8474)"
        )
    return Target(
        api_url=host.rstrip("/"),
        fault_url=fault_url,
        cablecast_url=os.environ.get("CABLECAST_URL") or None,
        database_url=os.environ.get("DATABASE_URL") or None,
        redis_url=os.environ.get("REDIS_URL") or None,
        external=True,
        app_logs=app_logs,
    )


def keep_app_logs(logs: tuple[Path, ...], run_dir: Path) -> list[str]:
    """Copy the app logs (their last LOG_KEEP_BYTES) into the run folder, where the
    findings read them after the stack and its state folder are gone; notes on failures."""
    notes = []
    folder = run_dir / APP_LOG_DIR
    for path in logs:
        try:
            with path.open("rb") as src:
                src.seek(0, os.SEEK_END)
                src.seek(max(0, src.tell() - LOG_KEEP_BYTES))
                data = src.read()
            folder.mkdir(exist_ok=True)
            (folder / path.name).write_bytes(data)
        except OSError as exc:
            notes.append(f"app log {path} not kept: {exc.strerror}")
    return notes


def run_findings_of(run_dir: Path) -> tuple[pd.DataFrame | None, str]:
    """The run's findings (analysis.findings) and '' , or None and why there are none."""
    try:
        return run_findings(run_dir).table, ""
    except InputError as exc:
        return None, str(exc)


def phase_at(experiment: Experiment, elapsed: float) -> str:
    if any(f.at <= elapsed < f.end for f in experiment.faults):
        return "during"
    if elapsed < min((f.at for f in experiment.faults), default=float("inf")):  # none: step load
        return "before"
    return "after"


def check_links(client: FaultClient, experiment: Experiment) -> None:
    try:
        proxies = client.proxies()
    except FaultServerError as exc:
        raise RunError(f"fault server {client.url}: {exc}") from None
    for i, fault in enumerate(experiment.faults):
        if fault.link not in proxies:
            known = ", ".join(sorted(proxies)) or "none"
            raise RunError(
                f"{experiment.path}: faults[{i}].link {fault.link!r} is not a proxy on "
                f"{client.url}; it has: {known}"
            )


def run_load(
    experiment: Experiment, target: Target, run_dir: Path, out: IO[str]
) -> tuple[float, float, list[Window]]:
    """Locust plus the fault timeline; returns (load start, load end, fault windows)."""
    with FaultClient(target.fault_url) as client:
        check_links(client, experiment)
        injector = Injector(client, run_dir)
        timeline = Timeline(injector, experiment.faults)
        progress = Progress(out, experiment.load.duration)
        process = start_locust(locust_command(experiment, target, run_dir), run_dir, target)
        if waiting := experiment.load.distribution.expect_workers:
            d = experiment.load.distribution
            progress.say(
                f"waiting up to {d.expect_workers_wait_s:g}s for {waiting} workers; "
                "start each with: "
                f"locust -f {experiment.load.locustfile} --worker --master-host "
                f"{'THIS-HOST' if d.master_bind_host in ('*', '0.0.0.0') else d.master_bind_host} "
                f"--master-port {d.master_bind_port}"
            )
        try:
            start = wait_for_start(
                process, run_dir, experiment.load.distribution.start_allowance_s()
            )
            progress.say(f"load started; faults relative to {dt.datetime.fromtimestamp(start)}")
            deadline = start + experiment.load.duration + STOP_GRACE_S
            while process.poll() is None:
                elapsed = time.time() - start
                try:
                    steps = timeline.step(elapsed)
                except FaultServerError as exc:
                    raise RunError(f"the fault server refused a fault: {exc}") from None
                for done in steps:
                    progress.say(f"{elapsed:6.1f}s {done}")
                progress.show(
                    phase_at(experiment, elapsed),
                    elapsed,
                    current_totals(run_dir),
                    timeline.active,
                )
                if time.time() > deadline:
                    progress.say("Locust did not stop in time; stopping it")
                    break
                time.sleep(TICK_S)
            if not timeline.finished:
                progress.say("Locust ended before the timeline did")
        finally:
            # Rollback first, whatever happened; a second Ctrl-C must not cut it short.
            previous = {
                sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)
            }
            try:
                problems = injector.remove_all(" (rolled back at stop)")
                stop_locust(process)
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
            if problems:
                raise RunError("could not remove every fault: " + "; ".join(problems))
        progress.say(f"Locust exited with code {process.returncode}")
        silent = run_meta(run_dir).get("coverage", {}).get("problems") or []
        if silent:
            more = f" (and {len(silent) - 1} more in {run_dir / 'locust.log'})" * bool(silent[1:])
            raise RunError(f"the workload was silent: {silent[0]}{more}")
        if process.returncode not in (0, None):
            raise RunError(
                f"Locust failed (exit code {process.returncode}); last lines of "
                f"{run_dir / 'locust.log'}:\n{log_tail(run_dir)}"
            )
        end = start + experiment.load.duration
        with contextlib.suppress(KeyError, ValueError, TypeError):
            end = float(run_meta(run_dir)["end"])
        windows = [Window.from_json(w) for w in injector.windows]
        return start, end, windows


def run_meta(run_dir: Path) -> dict[str, Any]:
    """meta.json of the run ({} when missing or unreadable)."""
    try:
        meta = json.loads((run_dir / "meta.json").read_text())
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def link_traffic(meta: dict[str, Any]) -> dict[str, int] | None:
    """Bytes each link carried over the load (None: not measured)."""
    links = meta.get("links")
    if not isinstance(links, dict):
        return None
    return {link: total(d) for link, d in links.items() if isinstance(d, dict)}


def read_requests(run_dir: Path) -> pd.DataFrame:
    """HTTP requests of a run (composite WORKFLOW entries left out: their steps are in)."""
    try:
        df = load.read_requests(run_dir)
    except load.InputError as exc:
        raise RunError(str(exc)) from None
    if "type" not in df:
        raise RunError(f"{run_dir}: the request files have no `type` column (old capture?)")
    df["type"] = df["type"].astype(str)
    df["name"] = df["name"].astype(str)
    return df[df["type"] != WORKFLOW_TYPE].reset_index(drop=True)


def route_names(profile: Profile, keys: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """(method, statistics name) of route keys: how the requests file names their requests."""
    return tuple((profile.route(k).method, profile.route(k).name) for k in keys)


def outage_defects(profile: Profile) -> tuple[OutageDefect, ...]:
    """The profile's [[defects_during]] as the verdict matches them against requests."""
    return tuple(
        OutageDefect(
            link=d.link,
            toxic=d.toxic,
            routes=route_names(profile, d.routes),
            status=d.status,
            ok_status=tuple(sorted({s for k in d.routes for s in profile.expected(k)})),
            why=d.why,
        )
        for d in profile.defects_during
    )


def judged_requests(experiment: Experiment, run_dir: Path) -> tuple[pd.DataFrame, Profile]:
    """The run's requests, `timed` marking those p95_ms is of; and the route profile."""
    requests = read_requests(run_dir)
    if requests.empty:
        raise RunError(f"{run_dir}: the load made no HTTP request")
    try:
        profile = Profile.load(experiment.load.routes)
    except ConfigError as exc:
        raise RunError(str(exc)) from None
    if experiment.hypothesis.p95_routes:  # p95_ms of these routes only
        timed = set(route_names(profile, experiment.hypothesis.p95_routes))
        pairs = zip(requests["type"], requests["name"], strict=True)
        requests["timed"] = [pair in timed for pair in pairs]
    return requests, profile


def judge(
    experiment: Experiment, run_dir: Path, start: float, end: float, windows: list[Window]
) -> Verdict:
    requests, profile = judged_requests(experiment, run_dir)
    overrides = {f.describe(): f.during for f in experiment.faults if f.during is not None}
    return evaluate(
        requests,
        windows,
        experiment.hypothesis,
        start,
        end,
        experiment.load.warmup,
        overrides,
        link_traffic(run_meta(run_dir)),
        outage_defects(profile),
        tuple(f"{m} {n}" for m, n in route_names(profile, experiment.hypothesis.p95_routes)),
    )


def run_profile_audit(
    experiment: Experiment, run_dir: Path, target: Target, out: IO[str]
) -> tuple[AuditResult | None, str | None]:
    """The audit the run's route profile defines, or (None, why there is none)."""
    try:
        profile = Profile.load(experiment.load.routes)
    except ConfigError as exc:
        raise RunError(str(exc)) from None
    if (note := no_audit_note(profile)) is not None:
        print(f"audit: {note}", file=out)
        return None, note
    sources = Sources(
        database_url=target.database_url,
        redis_url=target.redis_url,
        cablecast_url=target.cablecast_url,
    )
    if target.database_url is None:
        raise RunError("the audit needs the database: set DATABASE_URL (or run with --no-audit)")
    if profile.audit is not None and profile.audit.checks == "contract":
        waited = drain(sources, experiment.audit.drain, run_dir)
        print(f"drained the job queue in {waited:.1f}s; auditing", file=out)
    try:
        return audit_for_profile(run_dir, sources, experiment.audit, profile), None
    except AuditError as exc:
        raise RunError(f"audit: {exc}") from None


def keep_truth(experiment: Experiment, run_dir: Path, target: Target, phase: str) -> str:
    """What the stores hold now, for the answers the profile checks (experiments.answer_truth)
    in the run folder; '' or why it could not be taken (the answers then go unjudged)."""
    try:
        checks = load_answer_checks(profile_file(experiment.load.routes))
    except ConfigError as exc:
        raise RunError(str(exc)) from None
    if not checks:
        return ""
    sources = Sources(target.database_url, target.redis_url, target.cablecast_url)
    try:
        answer_truth.take(run_dir, phase, checks, sources)
    except AuditError as exc:
        return f"answers not checked against the data ({phase} the load): {exc}"
    return ""


def execute(
    experiment: Experiment,
    run_dir: Path,
    target: Target,
    out: IO[str] = sys.stderr,
    audit: bool = True,
) -> Outcome:
    """Run the experiment against a ready target; write verdict.json; return the outcome."""
    for line in cleanup():
        print(f"cleanup: {line}", file=out)
    run_dir.mkdir(parents=True, exist_ok=True)
    if any(run_dir.iterdir()):
        raise RunError(f"{run_dir} already holds files; give a new --run-dir")
    (run_dir / "experiment.toml").write_bytes(experiment.path.read_bytes())
    print(f"experiment {experiment.name}: {experiment.title}", file=out)
    print(f"run folder {run_dir}", file=out)
    untruthed = keep_truth(experiment, run_dir, target, "before")
    try:
        interval = sampler_interval()
    except InputError as exc:
        raise RunError(str(exc)) from None
    with sampling(target, run_dir, interval) as sampler:  # stops with the load, however
        start, end, windows = run_load(experiment, target, run_dir, out)
    print(sampler.summary(), file=out)
    untruthed = untruthed or keep_truth(experiment, run_dir, target, "after")
    for note in keep_app_logs(target.app_logs, run_dir):
        print(f"warning: {note}", file=out)
    if untruthed:
        print(f"warning: {untruthed}", file=out)
    verdict = judge(experiment, run_dir, start, end, windows)
    meta = run_meta(run_dir)
    audit_result, audit_note = None, None
    if audit and experiment.audit.enabled:
        audit_result, audit_note = run_profile_audit(experiment, run_dir, target, out)
    if audit_result is not None:  # its missing rows are findings (analysis.answers_run)
        (run_dir / AUDIT_FILE).write_text(json.dumps(audit_result.to_json()) + "\n")
    findings, no_findings = run_findings_of(run_dir)
    report = {
        "experiment": experiment.name,
        "title": experiment.title,
        "file": str(experiment.path),
        "run_dir": str(run_dir),
        "target": target.api_url,
        "load_start": start,
        "load_end": end,
        "windows": [w.__dict__ for w in windows],
        "verdict": verdict.to_json(),
        "audit": audit_result.to_json() if audit_result is not None else None,
        "audit_note": audit_note,
        "routes": experiment.load.routes,
        "p95_routes": list(experiment.hypothesis.p95_routes),
        "links": meta.get("links"),
        "coverage": {k: meta.get("coverage", {}).get(k, []) for k in ("skipped", "notes")},
        # defects of the app, whatever the verdict (python -m analysis findings RUN)
        "findings": to_records(findings) if findings is not None else None,
        "findings_error": no_findings or None,
    }
    if experiment.load.shape == "step":  # a capacity experiment: the knee of the steps
        report["capacity"] = capacity_report(
            experiment, judged_requests(experiment, run_dir)[0], start, run_dir
        )
    outcome = Outcome(verdict, audit_result, run_dir, report)
    report["ok"] = outcome.ok
    (run_dir / "verdict.json").write_text(json.dumps(report, indent=2) + "\n")
    return outcome

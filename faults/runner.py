"""Run one experiment: load with Locust, faults on a timeline, then audit and verdict.

The runner is the only process that injects faults (Locust runs as a child; its workers
never touch the fault server). Whatever happens - success, a failed check, Ctrl-C,
SIGTERM, an exception - every injected fault is removed before the runner returns, and a
SIGKILLed runner leaves a journal that `python -m faults cleanup` (or the next run)
uses to remove what it left (see faults.timeline).

Target: without `--host`, a reference stack (testbed) is started on free ports and
stopped at the end. With `--host`, the Archivist there is used, with the Toxiproxy of
`$TOXIPROXY_URL` and, for the audit, `$DATABASE_URL` (and `$REDIS_URL` if set).
"""

from __future__ import annotations

import contextlib
import csv
import ctypes
import datetime as dt
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pandas as pd

from analysis import load
from analysis.findings import to_records
from analysis.findings_run import APP_LOG_DIR, run_findings
from analysis.load import InputError
from faults.audit import (
    AuditError,
    AuditResult,
    Sources,
    audit_for_profile,
    drain,
    no_audit_note,
)
from faults.client import ENV_URL, FaultClient, FaultServerError
from faults.experiment import REPO_ROOT, Experiment
from faults.linkbytes import total
from faults.timeline import Injector, Timeline, cleanup
from faults.verdict import KNOWN_DEFECT, OutageDefect, Verdict, Window, evaluate
from testbed.hosted.spec import locust_flags
from workload.routes import Profile
from workload.tomlconfig import ConfigError

START_TIMEOUT_S = 90.0  # Locust import and first spawn on a loaded 2-core box
STOP_GRACE_S = 60.0  # after the planned duration, before Locust is stopped by force
TICK_S = 0.1
WORKFLOW_TYPE = "WORKFLOW"  # locustfiles/archivist.py: a timed sequence of requests
APP_LOG_STEMS = ("api", "worker")  # the reference stack's app logs: api.log, worker*.log
LOG_KEEP_BYTES = 20_000_000  # of each app log copied into the run folder


class RunError(Exception):
    """The experiment could not be run (not: it ran and failed); the message says why."""


@dataclass(frozen=True)
class Target:
    api_url: str
    fault_url: str
    cablecast_url: str | None = None
    database_url: str | None = None
    redis_url: str | None = None
    external: bool = False
    app_logs: tuple[Path, ...] = ()  # the application's log files, for the findings
    # Locust flags the hosted app wants (config/apps/NAME.toml [load] options), under the
    # experiment's own
    load_options: dict[str, Any] = field(default_factory=dict)


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


@contextmanager
def reference_stack(
    app: str | None = None, app_src: Path | None = None, config: Path | None = None
) -> Iterator[Target]:
    """Start the testbed stack on free ports; always stopped on leaving.

    `config`: the stack TOML (default config/stack.toml). `app` (a config/apps/NAME.toml)
    hosts that real Archivist from its checkout `app_src` instead of the reference API;
    None keeps what the stack TOML says.
    """
    from testbed.stack import StackError, StackSettings, running_stack
    from testbed.stack_settings import DEFAULT_CONFIG

    state_dir = Path(tempfile.mkdtemp(prefix="loadkit-experiment-stack-"))
    chosen: dict[str, Any] = {"app": app} if app is not None else {}
    if app_src is not None:
        chosen["app_src"] = app_src
    try:
        settings = StackSettings.from_config(
            config or DEFAULT_CONFIG, free_ports=True, state_dir=state_dir, **chosen
        )
        hosted = settings.hosted_app()
        with running_stack(settings) as stack:
            yield Target(
                api_url=stack.api_url,
                fault_url=stack.fault_url,
                cablecast_url=stack.cablecast_url,
                database_url=stack.database_url,
                redis_url=stack.redis_url,
                app_logs=stack_app_logs(stack.log_dir),
                load_options=dict(hosted.load_options) if hosted is not None else {},
            )
    except StackError as exc:
        raise RunError(f"the reference stack did not start: {exc}") from None
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)


def stack_app_logs(log_dir: Path) -> tuple[Path, ...]:
    """The reference stack's application logs: the API's and the workers' (not those of
    PostgreSQL, Redis or the fault server, whose lines would not explain an answer)."""
    return tuple(
        p
        for p in sorted(log_dir.glob("*.log"))
        if p.stem in APP_LOG_STEMS or p.stem.startswith("worker-")
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


def locust_command(experiment: Experiment, target: Target, run_dir: Path) -> list[str]:
    load = experiment.load
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        load.locustfile,
        "--headless",
        "--host",
        target.api_url,
        "--users",
        str(load.users),
        "--spawn-rate",
        f"{load.spawn_rate:g}",
        "--run-time",
        f"{round(load.duration)}s",
        "--run-dir",
        str(run_dir),
        "--csv",
        str(run_dir / "locust"),
        "--exit-code-on-error",
        "0",
        "--only-summary",
        "--routes",
        load.routes,
        "--faults-url",  # bytes per link into meta.json (locustfiles/links.py)
        target.fault_url,
    ]
    if "stop-timeout" not in load.options:
        command += ["--stop-timeout", "5"]  # users stop promptly; the ledger is flushed
    if target.cablecast_url and "cablecast-url" not in load.options:
        # the workloads verify each publication there (locustfiles/archivist.py)
        command += ["--cablecast-url", target.cablecast_url]
    if load.arrival_rate is not None:
        command += ["--arrival-rate", f"{load.arrival_rate:g}"]
    if load.shape is not None:
        command += ["--shape", load.shape]
    if load.tags:
        command += ["--tags", *load.tags]
    if load.exclude_tags:
        command += ["--exclude-tags", *load.exclude_tags]
    command += locust_flags(target.load_options | load.options)
    command += list(load.user_classes)
    return command


def _die_with_parent() -> None:
    """In the Locust child: get SIGTERM when the runner dies, even by SIGKILL (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def start_locust(command: list[str], run_dir: Path, target: Target) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env["LOADKIT_RUN_DIR"] = str(run_dir)
    log = (run_dir / "locust.log").open("wb")
    try:
        return subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the runner, which stops Locust cleanly
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
    finally:
        log.close()


def stop_locust(process: subprocess.Popen[bytes], grace: float = 15.0) -> None:
    """SIGTERM (Locust writes its files and quits), then SIGKILL the group."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        if process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(wait)


def _log_tail(run_dir: Path, lines: int = 15) -> str:
    path = run_dir / "locust.log"
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no locust.log)"
    return "\n".join(text[-lines:]) or "(empty)"


def wait_for_start(process: subprocess.Popen[bytes], run_dir: Path) -> float:
    """Epoch second the load started (meta.json `start`, written by analysis.capture)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    meta = run_dir / "meta.json"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RunError(
                f"Locust exited with code {process.returncode} before the load started; "
                f"last lines of {run_dir / 'locust.log'}:\n{_log_tail(run_dir)}"
            )
        with contextlib.suppress(OSError, ValueError):
            start = json.loads(meta.read_text()).get("start")
            if start:
                return float(start)
        time.sleep(TICK_S)
    raise RunError(
        f"Locust did not start the load within {START_TIMEOUT_S:g}s (no start in {meta}; "
        "does the locustfile import analysis.capture?)"
    )


@dataclass(frozen=True)
class Totals:
    """Locust's running totals (every entry it counts, HTTP and WORKFLOW) at one moment.

    `known_defects`: those of the failures that are answers the route profile lists as the
    app's own defects ([defects]); like the verdict, the progress line counts them apart.
    """

    requests: int
    failures: int
    known_defects: int = 0


def _csv_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a CSV file Locust rewrites in place; OSError or csv.Error if it
    cannot be read (the progress loop runs while faults are in place: it must not crash)."""
    with path.open(newline="", errors="replace") as f:
        rows = list(csv.reader(f))
    return (rows[0], rows[1:]) if rows else ([], [])


def known_defects_of(path: Path) -> int:
    """How many failures in Locust's failures CSV are known defects of the app.

    Locust writes an error as the exception's repr (`KnownDefect('known defect of ...')`);
    the workload's request ledger as `KnownDefect: ...` (the verdict's KNOWN_DEFECT).
    """
    try:
        columns, rows = _csv_rows(path)
        error, count = columns.index("Error"), columns.index("Occurrences")
    except (OSError, ValueError, csv.Error):
        return 0
    defect = KNOWN_DEFECT.removesuffix(":")
    known = 0
    for row in rows:
        if len(row) == len(columns) and row[error].startswith((KNOWN_DEFECT, defect + "(")):
            with contextlib.suppress(ValueError):
                known += int(row[count])
    return known


def current_totals(run_dir: Path) -> Totals | None:
    """Latest aggregated totals from Locust's `--csv` files (rewritten every second).

    Totals, not Locust's Requests/s and Failures/s: those are a rolling 10 s window,
    which after a phase change still shows the previous phase. The counts come from
    locust_stats.csv and the known defects from locust_failures.csv, which Locust
    rewrites in the same pass (its stats history is flushed only every few seconds, so
    it would lag the failures behind); the failures are read first, so the known defects
    are never more recent than the failures they are part of.
    """
    known = known_defects_of(run_dir / "locust_failures.csv")
    try:
        columns, rows = _csv_rows(run_dir / "locust_stats.csv")
        name, total, failed = (columns.index(c) for c in ("Name", "Request Count", "Failure Count"))
    except (OSError, ValueError, csv.Error):
        return None
    for row in reversed(rows):
        if len(row) == len(columns) and row[name] == "Aggregated":
            with contextlib.suppress(ValueError):
                return Totals(int(row[total]), int(row[failed]), known)
    return None


class Progress:
    """One updating line on a terminal; a line every few seconds otherwise.

    The counts are those of the current stretch: requests that ENDED since the phase or
    the set of active faults last changed (give or take the second between Locust's CSV
    writes), so a line labelled `during` shows only what happened during that fault.
    Locust counts a request when it ends, so one that started in a fault and timed out
    after it is counted in the next stretch; the verdict goes by start time. Known
    defects of the app (the route profile's [defects]) are not counted as failed but
    apart, as the verdict counts them: they fail in every phase, fault or not.
    """

    def __init__(self, out: IO[str], total: float, every: float | None = None) -> None:
        self.out = out
        self.total = total
        self.tty = out.isatty()
        self.every = every if every is not None else (0.5 if self.tty else 5.0)
        self.last = -math.inf
        self.stretch: tuple[str, tuple[str, ...]] | None = None
        self.since = 0.0
        self.base: Totals | None = None

    def show(self, phase: str, elapsed: float, totals: Totals | None, active: list[str]) -> None:
        stretch = (phase, tuple(active))
        if stretch != self.stretch:
            self.stretch, self.since = stretch, elapsed
            self.base = totals or Totals(0, 0)
        now = time.monotonic()
        if now - self.last < self.every:
            return
        self.last = now
        if totals is None or self.base is None:
            counts = "(no stats yet)"
        else:
            n = totals.requests - self.base.requests
            known = totals.known_defects - self.base.known_defects
            failed = totals.failures - self.base.failures - known
            share = f" ({failed / n:.1%})" if n else ""
            counts = f"since {self.since:.0f}s {n} requests ended, {failed} failed{share}"
            if known:
                counts += f", {known} known defect{'s' if known != 1 else ''}"
        faults = ", ".join(active) if active else "no fault"
        line = f"{phase:<7} {elapsed:5.0f}/{self.total:.0f}s | {counts} | {faults}"
        if self.tty:
            self.out.write("\r" + line[:160].ljust(160))
        else:
            self.out.write(line + "\n")
        self.out.flush()

    def say(self, text: str) -> None:
        if self.tty:
            self.out.write("\r" + " " * 160 + "\r")
        self.out.write(text + "\n")
        self.out.flush()


def phase_at(experiment: Experiment, elapsed: float) -> str:
    if any(f.at <= elapsed < f.end for f in experiment.faults):
        return "during"
    if elapsed < min(f.at for f in experiment.faults):
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
        try:
            start = wait_for_start(process, run_dir)
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
                f"{run_dir / 'locust.log'}:\n{_log_tail(run_dir)}"
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


def judge(
    experiment: Experiment, run_dir: Path, start: float, end: float, windows: list[Window]
) -> Verdict:
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
    start, end, windows = run_load(experiment, target, run_dir, out)
    for note in keep_app_logs(target.app_logs, run_dir):
        print(f"warning: {note}", file=out)
    verdict = judge(experiment, run_dir, start, end, windows)
    meta = run_meta(run_dir)
    audit_result, audit_note = None, None
    findings, no_findings = run_findings_of(run_dir)
    if audit and experiment.audit.enabled:
        audit_result, audit_note = run_profile_audit(experiment, run_dir, target, out)
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
    outcome = Outcome(verdict, audit_result, run_dir, report)
    report["ok"] = outcome.ok
    (run_dir / "verdict.json").write_text(json.dumps(report, indent=2) + "\n")
    return outcome

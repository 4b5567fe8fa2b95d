"""The runner's progress line: what happened in the current phase, not a rolling rate.

Locust's own Requests/s and Failures/s are a 10 s rolling window; right after a fault
ends they still show the fault, under the next phase's label. The line must count what
happened since the phase (or the set of active faults) changed. Answers the route
profile lists as the app's own defects ([defects]) fail in every phase: like the
verdict, the line counts them apart, not as failed.
"""

from __future__ import annotations

import csv
import io
import json
import re
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from experiments.experiment_file import load_experiment
from experiments.progress import Progress, current_totals
from experiments.runner import read_requests, run_load
from experiments.verdict import KNOWN_DEFECT
from testbed.target import Target

SYNC_STATUS = "/api/vod/sync-status"  # a [defects] route of config/routes/archivist-flask.toml
LINE = re.compile(
    r"since (\d+)s (\d+) requests ended, (\d+) failed(?: \([\d.]+%\))?(?:, (\d+) known defects?)?"
)
# Locust 2.x's --csv headers (locust_stats.csv, locust_failures.csv); these tests must not
# import Locust (gevent), the real run below checks them against Locust's own files.
STATS_HEADER = (
    "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,"
    "Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,"
    "50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%"
)
FAILURES_HEADER = "Method,Name,Error,Occurrences,First Seen,Last Seen"
# Errors as Locust writes them: the exception's repr (the workload's classes).
DEFECT = "KnownDefect('known defect of the app (sync_status): answers 500 every time')"
UNEXPLAINED = "CatchResponseError('status 500, expected 200')"
RATE_LIMITED = "RateLimited('429 rate limited: status 429, expected 200')"


class LocustCsv:
    """Running counts written as Locust's --csv writer rewrites its files every second."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.counts: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.errors: Counter[tuple[str, str]] = Counter()

    def ended(self, name: str, n: int, error: str = "") -> LocustCsv:
        self.counts[name] += n
        if error:
            self.failed[name] += n
            self.errors[(name, error)] += n
        return self

    def write(self) -> None:
        rest = ",12,20.5,3,900,200,9.0,0.2," + ",".join(["12"] * 11)
        rows = [f"GET,{n},{c},{self.failed[n]}{rest}" for n, c in sorted(self.counts.items())]
        total = f",Aggregated,{self.counts.total()},{self.failed.total()}{rest}"
        (self.run_dir / "locust_stats.csv").write_text("\n".join([STATS_HEADER, *rows, total]))
        failures = [
            f'GET,{name},"{error}",{n},2026-12-01T12:00:00Z,2026-12-01T12:00:09Z'
            for (name, error), n in sorted(self.errors.items())
        ]
        (self.run_dir / "locust_failures.csv").write_text("\n".join([FAILURES_HEADER, *failures]))


def test_the_line_counts_the_current_phase_not_locusts_rolling_rate(tmp_path: Path) -> None:
    stats = LocustCsv(tmp_path)
    out = io.StringIO()
    progress = Progress(out, total=180, every=0)
    assert current_totals(tmp_path) is None
    progress.show("before", 1, current_totals(tmp_path), [])
    assert "no stats yet" in out.getvalue()

    stats.ended("/api/vods", 500).write()
    progress.show("during", 60, current_totals(tmp_path), ["latency on redis"])
    stats.ended("/api/vods", 138).ended("/api/vods", 2, UNEXPLAINED).write()
    progress.show("during", 91, current_totals(tmp_path), ["latency on redis"])
    during = out.getvalue().splitlines()[-1]
    assert "since 60s 140 requests ended, 2 failed (1.4%) | latency on redis" in during, during

    progress.show("after", 100, current_totals(tmp_path), [])  # counting starts again
    stats.ended("/api/vods", 59).ended("/api/vods", 1, RATE_LIMITED).write()  # 429: failed
    progress.show("after", 106, current_totals(tmp_path), [])
    after = out.getvalue().splitlines()[-1]
    assert after.startswith("after") and "since 100s 60 requests ended, 1 failed (1.7%) |" in after


def test_known_defects_are_counted_apart_from_the_failures(tmp_path: Path) -> None:
    stats = LocustCsv(tmp_path)
    out = io.StringIO()
    progress = Progress(out, total=120, every=0)
    stats.ended("/api/browse", 40).ended(SYNC_STATUS, 9, DEFECT).write()
    progress.show("during", 50, current_totals(tmp_path), ["redis down"])
    stats.ended("/api/browse", 64).ended("/api/browse", 12, UNEXPLAINED)
    stats.ended(SYNC_STATUS, 30, DEFECT).write()
    progress.show("during", 80, current_totals(tmp_path), ["redis down"])
    line = out.getvalue().splitlines()[-1]
    assert "since 50s 106 requests ended, 12 failed (11.3%), 30 known defects | redis down" in line

    progress.show("after", 81, current_totals(tmp_path), [])
    stats.ended(SYNC_STATUS, 1, DEFECT).write()
    progress.show("after", 85, current_totals(tmp_path), [])
    last = out.getvalue().splitlines()[-1]
    assert "since 81s 1 requests ended, 0 failed (0.0%), 1 known defect |" in last, last


def test_a_stats_file_without_the_totals_gives_no_counts(tmp_path: Path) -> None:
    (tmp_path / "locust_stats.csv").write_text("Type,Name\n,Aggregated\n")
    assert current_totals(tmp_path) is None


def test_files_the_csv_module_cannot_read_give_no_counts_not_a_crash(tmp_path: Path) -> None:
    stats = LocustCsv(tmp_path)
    stats.ended("/api/browse", 3).ended(SYNC_STATUS, 2, DEFECT).write()
    huge = '"' + "x" * 200_000 + '"'  # over the csv module's field size limit
    with (tmp_path / "locust_failures.csv").open("a") as f:
        f.write(f"\nGET,/api/browse,{huge},1,,")
    totals = current_totals(tmp_path)
    assert totals is not None and (totals.requests, totals.known_defects) == (5, 0)
    (tmp_path / "locust_stats.csv").write_text(STATS_HEADER + "\n" + huge)
    assert current_totals(tmp_path) is None


# --- a real run: Locust, the real app's workload and route profile ------------------------


class DefectiveApp(BaseHTTPRequestHandler):
    """Answers like the real Archivist where the workload needs it to go on (CSRF token,
    health), with the 500 its profile lists as a defect on sync-status, and `{}`
    elsewhere: an upload without its file_id, shows without `shows` are unexplained."""

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = self.path.split("?", 1)[0]
        status, body, cookie = 200, {}, ""
        if path == "/api/csrf-token":
            body, cookie = {"csrf_token": "token"}, "session=secret; Path=/; HttpOnly"
        elif path == "/api/health":
            body = {"status": "healthy"}
        elif path == SYNC_STATUS:
            status, body = 500, {"error": "'VODService' object has no attribute"}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if cookie:
            self.send_header("Set-Cookie", cookie)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def defective_app() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), DefectiveApp)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


EXPERIMENT = """
title = "progress line on the real app's workload"
[load]
locustfile = "locustfiles/vod.py"
routes = "archivist-flask"
users = 3
spawn_rate = 3
duration = "12s"
[[faults]]
link = "redis"
toxic = "latency"
attributes = { latency = 50 }
at = "8s"
for = "1s"
[hypothesis]
error_rate = "< 5%"
p95_ms = "< 1000"
recovers_within = "1s"
sustained = "1s"
"""


def test_a_real_run_counts_the_apps_known_defects_apart(
    tmp_path: Path, lone_fault_url: str, journal_dir: Path
) -> None:
    """`experiments run`'s load loop (Locust with the archivist-flask workload and profile)
    against an app whose sync-status answers the listed 500: the line's known defects are
    those requests, and its failures the others."""
    path = tmp_path / "progress.toml"
    path.write_text(EXPERIMENT)
    experiment = load_experiment(path)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    out = io.StringIO()
    with defective_app() as url:
        run_load(experiment, Target(url, lone_fault_url, url), run_dir, out)

    live = [m for m in map(LINE.search, out.getvalue().splitlines()) if m and m[4]]
    assert live, out.getvalue()  # a line while the load ran showed known defects
    for m in live:
        assert int(m[3]) + int(m[4]) <= int(m[2]), m[0]

    # The whole run, from Locust's last CSV write, against its per-route counts: every
    # sync-status request failed as a known defect and nothing else did.
    with (run_dir / "locust_stats.csv").open(newline="") as f:
        rows = {(r["Type"], r["Name"]): r for r in csv.DictReader(f)}
    aggregated = rows[("", "Aggregated")]
    sync = rows[("GET", SYNC_STATUS)]
    defects = int(sync["Failure Count"])
    assert defects == int(sync["Request Count"]) > 0
    failed = int(aggregated["Failure Count"]) - defects
    assert failed > 0  # the uploads and the Cablecast lists without their fields
    lines = io.StringIO()
    progress = Progress(lines, total=12, every=0)
    progress.show("after", 12, None, [])  # a stretch from zero: the whole run
    progress.show("after", 12, current_totals(run_dir), [])
    whole = lines.getvalue().splitlines()[-1]
    n = int(aggregated["Request Count"])
    assert f"since 12s {n} requests ended, {failed} failed ({failed / n:.1%}), {defects} known" in (
        whole
    ), whole
    # The request ledger (the verdict's source) names the same requests known defects.
    ledger = read_requests(run_dir)
    known = ledger["error"].fillna("").astype(str).str.startswith(KNOWN_DEFECT)
    assert set(ledger.loc[known, "name"]) == {SYNC_STATUS}
    assert known.sum() == (ledger["name"] == SYNC_STATUS).sum()

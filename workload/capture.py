"""Locust plug-in that records every request exactly, one Parquet file per process.

Import it from a locustfile (``import workload.capture``; ``import analysis.capture``, its
older name, still works); it registers itself through Locust's events and never patches
Locust.

Why Parquet of raw samples rather than an HDR histogram per second and name: raw
samples keep full precision (exact percentiles, not 2-3 significant digits), keep the
per-request ``intended_start`` needed to correct for coordinated omission, and let the
analysis resample by second or block later without deciding bucket layouts now. The
cost stays small: a request appends one tuple to a list (no I/O); rows are written in
row groups every ``FLUSH_ROWS`` requests or ``FLUSH_SECONDS`` and at stop/quit. A
million requests take about 10-15 MB on disk with dictionary-encoded names.

The file is closed at Locust's ``quit`` event (or at exit), not at ``quitting``: on
SIGTERM Locust fires ``quitting`` before it stops the users, which may then finish
their tasks for up to ``--stop-timeout``; their requests still belong in the file.

Layout of a run folder (``--run-dir``, default ``$LOADKIT_RUN_DIR`` or
``runs/<UTC timestamp>-<locustfile stems joined by +>``)::

    requests-<pid>.parquet   one per process that ran users (workers, or the single process)
    requests-<worker id>.parquet   on a master whose workers ship their rows (workload.shipping)
    meta.json                written by the master or the single process
    faults.jsonl             written by the fault injector (not by this module)
"""

from __future__ import annotations

import atexit
import datetime as dt
import json
import logging
import math
import os
import platform
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from locust import events
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from workload.schema import SCHEMA, rows_table

log = logging.getLogger(__name__)

FLUSH_ROWS = 50_000
FLUSH_SECONDS = 10.0
ERROR_CHARS = 200
ENV_RUN_DIR = "LOADKIT_RUN_DIR"

# Taken at import, which happens before `--processes` forks, so every process of one
# run agrees on the default folder name.
_IMPORT_STAMP = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def default_run_dir(locustfile: str | None) -> Path:
    """`$LOADKIT_RUN_DIR`, else `runs/<UTC timestamp>-<stems>`.

    The stems are those of every file of ``-f`` (``-f vod.py,auth.py``: ``vod+auth``),
    so a mixed run is not named after its last file; past three, ``+N-more``.
    """
    if env := os.environ.get(ENV_RUN_DIR):
        return Path(env)
    stems = [Path(f.strip()).stem for f in (locustfile or "").split(",")]
    stems = [s for s in stems if s and s != "-"] or ["locust"]
    if len(stems) > 3:
        stems = [*stems[:3], f"{len(stems) - 3}-more"]
    return Path("runs") / f"{_IMPORT_STAMP}-{'+'.join(stems)}"


def run_dir_of(environment: Environment) -> Path:
    """The run folder of this Locust run (created if missing), for other plug-ins too."""
    opts = environment.parsed_options
    chosen = getattr(opts, "run_dir", None) if opts is not None else None
    if not chosen:
        chosen = default_run_dir(getattr(opts, "locustfile", None) if opts else None)
    path = Path(chosen)
    path.mkdir(parents=True, exist_ok=True)
    return path


class Recorder:
    """Buffers request rows in memory and writes them as Parquet row groups.

    With a `sink` (set by workload.shipping on a worker whose master keeps the rows), each
    flushed table goes to the sink instead of the local file, at most `flush_rows` rows at
    a time.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: list[tuple[Any, ...]] = []
        self.worker = -1
        self.pid = os.getpid()
        self.last_flush = time.monotonic()
        self._writer: pq.ParquetWriter | None = None
        self.closed = False
        self.recorded = 0  # every row added, whatever became of it: a worker reports it
        self.flush_rows = FLUSH_ROWS
        self.sink: Callable[[pa.Table], None] | None = None

    def add(self, row: tuple[Any, ...]) -> None:
        self.rows.append(row)
        self.recorded += 1
        if len(self.rows) >= self.flush_rows or time.monotonic() - self.last_flush > FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        self.last_flush = time.monotonic()
        if not self.rows:
            return
        rows, self.rows = self.rows, []
        if self.sink is not None:
            self.sink(rows_table(rows, self.pid, self.worker))
            return
        if self.closed:  # a new writer would truncate the file and lose what it holds
            log.warning("%d requests after %s was closed are not recorded", len(rows), self.path)
            return
        table = rows_table(rows, self.pid, self.worker)
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(self.path, SCHEMA, compression="zstd")
        self._writer.write_table(table)

    def close(self) -> None:
        self.flush()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self.closed = True


_recorder: Recorder | None = None


def recorder() -> Recorder | None:
    """This process's recorder (None on a master, or before Locust's init)."""
    return _recorder


_environment: Environment | None = None
_started: float | None = None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _jsonable(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return str(value)


def _read_meta(path: Path) -> dict[str, Any]:
    """The meta.json written so far; empty when there is none or it is unreadable, so a
    damaged file is rewritten rather than failing the run."""
    if path.exists():
        try:
            meta: dict[str, Any] = json.loads(path.read_text())
            return meta
        except (OSError, ValueError):
            return {}
    return {}


def record_in_meta(run_dir: Path, **fields: Any) -> None:
    """Add `fields` to the run's meta.json (other plug-ins' findings: task coverage, link
    bytes), keeping what is there."""
    path = run_dir / "meta.json"
    meta = _read_meta(path)
    meta.update(fields)
    path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def _write_meta(environment: Environment, **extra: Any) -> None:
    import locust

    opts = environment.parsed_options
    options = {k: _jsonable(v) for k, v in sorted(vars(opts).items())} if opts else {}
    path = run_dir_of(environment) / "meta.json"
    meta = _read_meta(path)
    meta.update(
        {
            "git_commit": _git_commit(),
            "locustfile": options.get("locustfile"),
            "locust_version": locust.__version__,
            "target_host": environment.host or options.get("host"),
            "machine": socket.gethostname(),
            "python": platform.python_version(),
            "seed": os.environ.get("LOADKIT_SEED", options.get("seed")),
            "users": options.get("num_users"),
            "processes": options.get("processes"),
            "options": options,
        }
    )
    meta.update(extra)
    path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def _writes_requests(environment: Environment) -> bool:
    return not isinstance(environment.runner, MasterRunner)


def _writes_meta(environment: Environment) -> bool:
    return not isinstance(environment.runner, WorkerRunner)


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any) -> None:
    parser.add_argument(
        "--run-dir",
        type=str,
        default=os.environ.get(ENV_RUN_DIR, ""),
        help="Folder for exact per-request results (workload.capture); "
        f"default ${ENV_RUN_DIR} or runs/<UTC timestamp>-<stems of the -f files, joined by +>",
    )


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    global _recorder, _environment
    _environment = environment
    if _writes_requests(environment):
        _recorder = Recorder(run_dir_of(environment) / f"requests-{os.getpid()}.parquet")
        atexit.register(_recorder.close)


def answer_of(response: Any, failed: bool) -> tuple[int, str | None, str | None]:
    """(status, content type, first ERROR_CHARS of the body) of an answer; the last two
    only for a failed one, so a successful request costs one attribute read.

    Kept so that a finding can say what a failure looked like (a JSON error, an HTML
    error page, nothing) without a second request (analysis.findings).
    """
    status = getattr(response, "status_code", 0)
    status = status if isinstance(status, int) else 0
    if not failed or response is None:
        return status, None, None
    try:
        headers = getattr(response, "headers", None)
        ctype = headers.get("content-type") if headers is not None else None
        content = response.content  # already read by the clients that report a request
    except Exception:  # a broken answer must not break the recording
        return status, None, None
    body = content[: ERROR_CHARS * 4].decode("utf-8", "replace") if content else ""
    return status, str(ctype)[:ERROR_CHARS] if ctype else None, body[:ERROR_CHARS]


@events.request.add_listener
def _on_request(
    request_type: str,
    name: str,
    response_time: float | None,
    response_length: int | None,
    exception: BaseException | None = None,
    context: dict[str, Any] | None = None,
    start_time: float | None = None,
    response: Any = None,
    **_: Any,
) -> None:
    rec = _recorder
    if rec is None:
        return
    ms = response_time or 0.0
    if start_time is None:
        start_time = time.time() - ms / 1000.0
    intended = context.get("intended_start", math.nan) if context else math.nan
    error = None if exception is None else f"{type(exception).__name__}: {exception}"[:ERROR_CHARS]
    status, content_type, body = answer_of(response, exception is not None)
    rec.add(
        (
            start_time,
            name,
            request_type,
            round(ms * 1000.0),
            exception is None,
            error,
            response_length or 0,
            math.nan if intended is None else float(intended),
            status,
            content_type,
            body,
        )
    )


@events.test_start.add_listener
def _on_test_start(environment: Environment, **_: Any) -> None:
    global _started
    _started = time.time()
    if _recorder is not None and environment.runner is not None:
        _recorder.worker = int(getattr(environment.runner, "worker_index", -1))
    if _writes_meta(environment):
        _write_meta(environment, start=_started)


@events.test_stop.add_listener
def _on_test_stop(environment: Environment, **_: Any) -> None:
    if _recorder is not None:
        _recorder.flush()
    if _writes_meta(environment):
        runner = environment.runner
        _write_meta(
            environment,
            start=_started,
            end=time.time(),
            peak_users=getattr(runner, "target_user_count", None),
        )


@events.quitting.add_listener
def _on_quitting(environment: Environment, **_: Any) -> None:
    if _recorder is not None:  # users may still run (SIGTERM): flush now, close at quit
        _recorder.flush()


@events.quit.add_listener
def _on_quit(**_: Any) -> None:
    if _recorder is not None:
        _recorder.close()

"""Workers send their request rows and ledger to the master, over Locust's own channel.

A ``--worker`` on another host records requests (workload.capture) and acknowledged writes
(workload.ledger) on its own disk, where the master's run folder never sees them: the
analysis would find no requests and the audit no writes. So, when the master says so, a
worker hands both to the master instead, in bounded messages while the run goes on, and
the master writes them into its run folder (workload.inbox: ``requests-<worker>.parquet``
and ``ledger-<worker>.jsonl``). Nothing assumes a shared disk; the worker keeps no copy.

Who ships: ``--worker-data auto|master|local``, decided on the master. ``auto`` is
``master`` for a ``--master`` and ``local`` under ``--processes`` (its workers share the
master's disk and write their own files, as before). Locust hands the master's custom
options to every worker with each spawn, before the worker's ``test_start``, so a worker
never decides for itself.

The messages (Locust's ``send_message`` / ``register_message``):

- ``archivist_rows`` (worker -> master): at most ``SHIP_ROWS`` rows as an Arrow IPC stream
  in the capture schema, sent when the buffer fills and every ``SHIP_SECONDS``;
- ``archivist_ledger`` (worker -> master): at most ``SHIP_LINES`` ledger lines;
- ``archivist_shipped`` (worker -> master): its totals, after its last batch of a test;
- ``archivist_finish`` (master -> worker): stop the users and send the rest.

Why ``archivist_finish``: at ``--run-time`` (or SIGTERM) the master's ``quit`` fires its
``test_stop`` without stopping the workers, sends them ``quit`` and stops listening 0.5 s
later; a worker only then stops its users (up to ``--stop-timeout``) and sends its last
data, which could come too late. So the master's ``test_stop`` asks each worker to stop
and send the rest first, and waits for every worker's ``archivist_shipped`` (or for
Locust to call it missing, or ``--stop-timeout`` plus ``FINAL_GRACE_S``) before Locust
goes on to quit. A worker that itself quits (SIGTERM on it) stops its users and sends the
rest before Locust's own ``quit`` notice leaves it. Locust's channel keeps each worker's
messages in order, so a report that arrives means every batch before it arrived.

A worker that never reports (SIGKILL, a cut network) is ``lost``: the master's meta.json
names it under ``workers`` with what arrived from it, and ``python -m analysis summary``
says so.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import gevent
import pyarrow as pa
from locust import events
from locust.env import Environment
from locust.exception import RPCError
from locust.runners import (
    STATE_MISSING,
    STATE_RUNNING,
    STATE_SPAWNING,
    MasterRunner,
    WorkerRunner,
)

from workload import capture
from workload.capture import record_in_meta, run_dir_of
from workload.inbox import Inbox, table_bytes, worker_lines
from workload.ledger import LEDGER

log = logging.getLogger(__name__)

ROWS, LEDGER_LINES, SHIPPED, FINISH = (
    "archivist_rows",
    "archivist_ledger",
    "archivist_shipped",
    "archivist_finish",
)
SHIP_ROWS = 2000  # rows per message: ~200 kB, well under what the channel buffers
SHIP_LINES = 1000
SHIP_SECONDS = 1.0  # a killed worker loses about this much of what it recorded
FINAL_GRACE_S = 30.0  # beyond --stop-timeout, for the last batches to travel


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any) -> None:
    parser.add_argument(
        "--worker-data",
        choices=("auto", "master", "local"),
        default="auto",
        include_in_web_ui=False,  # decided once, at the master's init
        help="Where workers' request rows and ledger go (set on the master): 'master' ships "
        "them to the master's run folder, 'local' leaves them in each worker's own; "
        "'auto': master for --master, local for --processes (workload.shipping)",
    )


def ships(environment: Environment) -> bool:
    opts = environment.parsed_options
    return opts is not None and getattr(opts, "worker_data", "auto") == "master"


# -- the worker's side ---------------------------------------------------------------------


class Shipper:
    """Sends a worker's rows and ledger lines to its master, and counts what it sent."""

    def __init__(self, runner: WorkerRunner) -> None:
        self.runner = runner
        self.rows = 0
        self.lines = 0
        self.messages = 0
        self.unsent = 0

    def _send(self, kind: str, data: dict[str, Any], count: int) -> bool:
        try:
            self.runner.send_message(kind, data)
        except RPCError as exc:  # the master is gone: say what did not get there
            self.unsent += count
            log.error("could not send %d %s to the master: %s", count, kind, exc)
            return False
        self.messages += 1
        return True

    def send_rows(self, table: pa.Table) -> None:
        for start in range(0, table.num_rows, SHIP_ROWS):
            part = table.slice(start, SHIP_ROWS)
            if self._send(ROWS, {"table": table_bytes(part)}, part.num_rows):
                self.rows += part.num_rows

    def send_lines(self, lines: list[str]) -> None:
        for start in range(0, len(lines), SHIP_LINES):
            part = lines[start : start + SHIP_LINES]
            if self._send(LEDGER_LINES, {"lines": part}, len(part)):
                self.lines += len(part)

    def flush(self) -> None:
        if (rec := capture.recorder()) is not None:
            rec.flush()
        LEDGER.flush()

    def report(self) -> None:
        """Everything buffered, then the totals: the master's sign that nothing is missing."""
        self.flush()
        self._send(SHIPPED, {"rows": self.rows, "ledger": self.lines}, 0)


_shipper: Shipper | None = None
_ticker: gevent.Greenlet | None = None


def _tick(shipper: Shipper) -> None:
    """Send what is buffered every SHIP_SECONDS, so a quiet worker's rows do not wait for a
    full batch (and a killed one loses little)."""
    while True:
        gevent.sleep(SHIP_SECONDS)
        shipper.flush()


def _start_shipping(environment: Environment) -> None:
    global _shipper, _ticker
    runner = environment.runner
    assert isinstance(runner, WorkerRunner)
    if _shipper is None:
        _shipper = Shipper(runner)
        if (rec := capture.recorder()) is not None:
            rec.flush()  # anything recorded before (nothing, normally) stays local
            rec.sink, rec.flush_rows = _shipper.send_rows, SHIP_ROWS
        LEDGER.flush()
        LEDGER.sink = _shipper.send_lines
    if _ticker is None:
        _ticker = gevent.spawn(_tick, _shipper)


def _stop_and_report(environment: Environment) -> None:
    """Stop the users if they run (their last rows go out at test_stop, with the report),
    else report now."""
    runner = environment.runner
    if runner is not None and runner.state in (STATE_SPAWNING, STATE_RUNNING):
        runner.stop()  # fires test_stop: _report_at_stop
    elif _shipper is not None:
        _shipper.report()


def _on_finish(environment: Environment, msg: Any, **_: Any) -> None:
    _stop_and_report(environment)


def _quitting_worker(environment: Environment, **_: Any) -> None:
    """SIGTERM on a worker: Locust's quit notice to the master is a `quitting` listener too;
    this one is added after it (at init), and `quitting` runs its listeners last-added
    first, so the rest is sent before the master hears that the worker left."""
    if _shipper is not None:
        _stop_and_report(environment)


# -- the master's side ---------------------------------------------------------------------

_inboxes: dict[str, Inbox] = {}
_master_env: Environment | None = None


def inbox_of(client_id: str) -> Inbox:
    assert _master_env is not None
    if client_id not in _inboxes:
        _inboxes[client_id] = Inbox(client_id, run_dir_of(_master_env))
    return _inboxes[client_id]


def _on_rows(environment: Environment, msg: Any, **_: Any) -> None:
    inbox_of(msg.node_id).add_rows(msg.data["table"])


def _on_ledger(environment: Environment, msg: Any, **_: Any) -> None:
    inbox_of(msg.node_id).add_ledger(list(msg.data["lines"]))


def _on_shipped(environment: Environment, msg: Any, **_: Any) -> None:
    inbox_of(msg.node_id).report(int(msg.data["rows"]), int(msg.data["ledger"]))


def _pending(runner: MasterRunner) -> list[str]:
    """Workers still connected whose final report has not come."""
    return [
        c.id
        for c in list(runner.clients.all)
        if c.state != STATE_MISSING and not inbox_of(c.id).final
    ]


def _await_reports(environment: Environment) -> None:
    runner = environment.runner
    assert isinstance(runner, MasterRunner)
    if gevent.getcurrent() in runner.greenlet:
        # Called from Locust's own listener or heartbeat greenlet (the last worker quit or
        # went missing): waiting here would hold the very messages we wait for, and every
        # worker has already left or been given up.
        return
    pending = _pending(runner)
    for client_id in pending:
        runner.send_message(FINISH, client_id=client_id)
    deadline = time.monotonic() + float(environment.stop_timeout or 0) + FINAL_GRACE_S
    while pending and time.monotonic() < deadline:
        gevent.sleep(0.1)
        pending = _pending(runner)
    if pending:
        log.warning("no final report from %s in time: counted as lost", ", ".join(pending))


def _record_workers(environment: Environment) -> None:
    workers = {client_id: inbox.to_json() for client_id, inbox in sorted(_inboxes.items())}
    record_in_meta(run_dir_of(environment), workers=workers)


# -- wiring ----------------------------------------------------------------------------------


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    global _master_env
    runner, opts = environment.runner, environment.parsed_options
    if isinstance(runner, MasterRunner) and opts is not None:
        if getattr(opts, "worker_data", "auto") == "auto":
            opts.worker_data = "local" if getattr(opts, "processes", None) else "master"
        if ships(environment):
            _master_env = environment
            runner.register_message(ROWS, _on_rows)  # in order: never concurrent
            runner.register_message(LEDGER_LINES, _on_ledger)
            runner.register_message(SHIPPED, _on_shipped)
    elif isinstance(runner, WorkerRunner):
        runner.register_message(FINISH, _on_finish, concurrent=True)
        environment.events.quitting.add_listener(_quitting_worker)


@events.worker_connect.add_listener
def _on_worker_connect(client_id: str, **_: Any) -> None:
    if _master_env is not None:
        inbox_of(client_id)  # known from now on: one that dies before it sends is lost too


@events.test_start.add_listener
def _on_test_start(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, WorkerRunner) and ships(environment):
        _start_shipping(environment)
    elif _master_env is not None:
        for inbox in _inboxes.values():
            inbox.final = False


@events.test_stop.add_listener
def _on_test_stop(environment: Environment, **_: Any) -> None:
    global _ticker
    if isinstance(environment.runner, WorkerRunner) and _shipper is not None:
        if _ticker is not None:
            _ticker.kill(block=False)
            _ticker = None
        _shipper.report()
    elif _master_env is not None:
        _await_reports(environment)
        _record_workers(environment)
        for line in worker_lines({k: v.to_json() for k, v in sorted(_inboxes.items())}):
            (log.info if "LOST" not in line else log.warning)(line)


@events.quit.add_listener
def _on_quit(**_: Any) -> None:
    if _shipper is not None:
        rec = capture.recorder()
        log.info(
            "worker data of %s: recorded %d requests and %d ledger entries; sent %d rows and "
            "%d ledger entries to the master in %d messages%s",
            _shipper.runner.client_id,
            rec.recorded if rec is not None else 0,
            LEDGER.flushed + len(LEDGER.entries),
            _shipper.rows,
            _shipper.lines,
            _shipper.messages,
            f"; {_shipper.unsent} could not be sent" if _shipper.unsent else "",
        )
    if _master_env is not None:
        for inbox in _inboxes.values():
            inbox.close()
        _record_workers(_master_env)

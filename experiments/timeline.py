"""Inject faults, record their windows, and always take them out again.

Three pieces, used by the experiment runner and by the web UI's faults panel:

- `Journal`: before anything is injected, a line saying what and where is written and
  fsync'ed to `runs/.faults-journal/<pid>-<n>.jsonl`; after removal, a line saying so.
  If the injecting process dies (SIGKILL, power cut), `cleanup()` - run by
  `python -m experiments cleanup` and at the start of every experiment - reads the journals
  of dead processes and removes what they left behind.
- `Injector`: adds a toxic or takes a link down, removes it, and appends the fault
  window to the run folder's `faults.jsonl` (the shared format).
- `Timeline`: the experiment's faults as timed inject/remove events, applied by
  `step(elapsed)` from the runner's loop (the master's side only, never from workers).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_fixed

from experiments.experiment import REPO_ROOT, Fault
from faults.client import FaultClient, FaultNotFound, FaultServerError, FaultServerUnavailable
from faults.linkbytes import difference
from faults.toxic_types import DOWN

JOURNAL_DIR = REPO_ROOT / "runs" / ".faults-journal"
ENV_JOURNAL_DIR = "LOADKIT_FAULTS_JOURNAL"

_counter = itertools.count(1)


def journal_dir() -> Path:
    return Path(os.environ.get(ENV_JOURNAL_DIR) or JOURNAL_DIR)


@dataclass
class Active:
    """One injected fault that is still in place."""

    id: str
    link: str
    toxic: str  # a Toxiproxy type or "down"
    name: str  # toxic name on the server ("" for down)
    attributes: dict[str, Any]
    stream: str
    toxicity: float
    what: str
    start: float = field(default_factory=time.time)
    bytes_at_start: dict[str, int] | None = None  # the link's counters when it went in

    def window(
        self, end: float, note: str = "", bytes_at_end: dict[str, int] | None = None
    ) -> dict[str, Any]:
        """The faults.jsonl line for this fault ending at `end`.

        `bytes` is what the link carried (per direction) while the fault was in place,
        null when the fault server has no metrics."""
        carried = None
        if self.bytes_at_start is not None and bytes_at_end is not None:
            carried = difference({"l": bytes_at_end}, {"l": self.bytes_at_start})["l"]
        return {
            "start": self.start,
            "end": end,
            "link": self.link,
            "toxic": self.toxic,
            "attributes": self.attributes,
            "stream": self.stream,
            "toxicity": self.toxicity,
            "what": self.what + note,
            "bytes": carried,
        }


class Journal:
    """Write-ahead record of injections, so that a killed process's faults can be undone."""

    def __init__(self, fault_url: str, run_dir: Path | None, directory: Path | None = None):
        self.directory = directory or journal_dir()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / f"{os.getpid()}-{next(_counter)}-{time.time_ns()}.jsonl"
        self.fault_url = fault_url
        self.run_dir = str(run_dir) if run_dir is not None else None
        self.open = 0

    def _append(self, record: dict[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def injecting(self, active: Active) -> None:
        record = {"op": "inject", "url": self.fault_url, "run_dir": self.run_dir}
        record.update(active.__dict__)
        self._append(record)
        self.open += 1

    def removed(self, active: Active) -> None:
        self._append({"op": "removed", "id": active.id})
        self.open -= 1

    def close(self) -> None:
        """Delete the journal once nothing in it is still injected."""
        if self.open <= 0:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


_transient = retry(
    retry=retry_if_exception_type(FaultServerUnavailable),
    stop=stop_after_attempt(3),
    wait=wait_fixed(0.3),
    reraise=True,
)


@_transient
def _undo(client: FaultClient, link: str, toxic: str, name: str) -> None:
    """Remove a toxic or bring a link back up; already gone is fine."""
    try:
        if toxic == DOWN:
            client.enable(link)
        else:
            client.remove_toxic(link, name)
    except FaultNotFound:
        pass


class Injector:
    """Adds and removes faults on one Toxiproxy server; records every window."""

    def __init__(self, client: FaultClient, run_dir: Path | None, journal: Journal | None = None):
        self.client = client
        self.run_dir = run_dir
        self.journal = journal or Journal(client.url, run_dir)
        self.active: dict[str, Active] = {}
        self.windows: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def inject(
        self,
        link: str,
        toxic: str,
        attributes: dict[str, Any] | None = None,
        stream: str = "downstream",
        toxicity: float = 1.0,
        what: str | None = None,
    ) -> Active:
        """Journal first, then inject; FaultServerError (with the server's words) if refused."""
        attributes = dict(attributes or {})
        with self._lock:
            ident = f"f{os.getpid()}-{next(_counter)}"
            name = "" if toxic == DOWN else f"loadkit-{ident}-{toxic}"
            if what is None:
                what = Fault(link, toxic, 0, 1, attributes, stream, toxicity).describe()
            active = Active(
                ident,
                link,
                toxic,
                name,
                attributes,
                "both" if toxic == DOWN else stream,
                toxicity,
                what,
            )
            self.journal.injecting(active)
            try:
                if toxic == DOWN:
                    self.client.disable(link)
                else:
                    self.client.add_toxic(link, toxic, attributes, stream, toxicity, name=name)
            except FaultServerError:
                self.journal.removed(active)  # nothing is in place
                raise
            active.start = time.time()
            self.active[ident] = active  # first: from here on, a rollback takes it out
            active.bytes_at_start = self._bytes_of(link)
            return active

    def _bytes_of(self, link: str) -> dict[str, int] | None:
        """The link's byte counters now; None when the server keeps no metrics."""
        try:
            return self.client.link_bytes().get(link)
        except FaultServerError:
            return None

    def remove(self, ident: str, note: str = "") -> dict[str, Any]:
        """Take one fault out; returns (and records) its window."""
        with self._lock:
            active = self.active[ident]
            carried = self._bytes_of(active.link) if active.bytes_at_start is not None else None
            _undo(self.client, active.link, active.toxic, active.name)
            del self.active[ident]
            window = active.window(time.time(), note, carried)
            self.journal.removed(active)
            self.windows.append(window)
            if self.run_dir is not None:
                append_window(self.run_dir, window)
            return window

    def remove_all(self, note: str = "") -> list[str]:
        """Take every active fault out; returns the problems (empty when all went)."""
        problems = []
        for ident in list(self.active):
            try:
                self.remove(ident, note)
            except FaultServerError as exc:
                problems.append(f"{self.active[ident].what}: {exc}")
        if not problems:
            self.journal.close()
        return problems


def append_window(run_dir: Path, window: dict[str, Any]) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    with (run_dir / "faults.jsonl").open("a", encoding="utf-8") as f:
        f.write(json.dumps(window) + "\n")


class Timeline:
    """An experiment's faults as inject/remove events at offsets from the load's start."""

    def __init__(self, injector: Injector, faults: tuple[Fault, ...]):
        self.injector = injector
        self.faults = faults
        events = [(f.at, 1, i) for i, f in enumerate(faults)]
        events += [(f.end, 0, i) for i, f in enumerate(faults)]  # removals first on ties
        self._events = sorted(events)
        self._next = 0
        self._active: dict[int, str] = {}

    def step(self, elapsed: float) -> list[str]:
        """Apply every event due by `elapsed` seconds; returns what was done, in words."""
        done = []
        while self._next < len(self._events) and self._events[self._next][0] <= elapsed:
            _, inject, i = self._events[self._next]
            self._next += 1
            fault = self.faults[i]
            if inject:
                active = self.injector.inject(
                    fault.link,
                    fault.toxic,
                    fault.attributes,
                    fault.stream,
                    fault.toxicity,
                    fault.describe(),
                )
                self._active[i] = active.id
                done.append(f"+ {fault.describe()}")
            elif i in self._active:
                self.injector.remove(self._active.pop(i))
                done.append(f"- {fault.describe()}")
        return done

    @property
    def active(self) -> list[str]:
        return [a.what for a in self.injector.active.values()]

    @property
    def finished(self) -> bool:
        return self._next >= len(self._events)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cleanup(directory: Path | None = None, include_live: bool = False) -> list[str]:
    """Undo what dead (or, with include_live, any) injecting processes left behind.

    Returns one line per action, for the CLI to print. A journal whose server is gone
    is dropped: a stopped server holds no toxics.
    """
    directory = directory or journal_dir()
    if not directory.is_dir():
        return []
    lines = []
    for path in sorted(directory.glob("*.jsonl")):
        pid_text = path.name.split("-", 1)[0]
        if not include_live and pid_text.isdigit() and pid_alive(int(pid_text)):
            continue
        injected: dict[str, dict[str, Any]] = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a torn last line from a kill mid-write
            if record.get("op") == "inject":
                injected[record["id"]] = record
            elif record.get("op") == "removed":
                injected.pop(record.get("id"), None)
        keep = False
        for record in injected.values():
            url = record["url"]
            try:
                with FaultClient(url, timeout=3.0) as client:
                    _undo(client, record["link"], record["toxic"], record["name"])
                lines.append(f"removed {record['what']} ({url}, left by pid {pid_text})")
            except FaultServerUnavailable:
                lines.append(f"{url} is gone, and with it {record['what']}")
            except FaultServerError as exc:
                lines.append(f"could not remove {record['what']} from {url}: {exc}")
                keep = True
                continue
            if record.get("run_dir"):
                window = Active(
                    record["id"],
                    record["link"],
                    record["toxic"],
                    record["name"],
                    record.get("attributes") or {},
                    record.get("stream", "downstream"),
                    float(record.get("toxicity", 1.0)),
                    record["what"],
                    float(record["start"]),
                ).window(time.time(), " (left behind; removed by cleanup)")
                with contextlib.suppress(OSError):
                    append_window(Path(record["run_dir"]), window)
        if not keep:
            path.unlink()
    return lines

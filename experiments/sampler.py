"""Sample the app's resources once a second while a run's load runs (analysis.resources).

What a leak looks like from outside: PostgreSQL connections that pile up
(`pg_stat_activity`, by application and state), app processes whose RSS, open files or
threads climb (psutil, over each app part's whole process tree: the hosted app's
gunicorn master and workers, its Celery worker), Redis clients and memory (`INFO`).

The database and Redis are read on their direct URLs, never through the fault proxies:
a fault on the app's link must not blind the sampler. A source that cannot be read is a
gap row (with the reason) for that second, never an error of the run; the sampler runs in
a thread of the runner and stops with the run, however the run ends.
"""

from __future__ import annotations

import contextlib
import csv
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import psutil
import psycopg
import redis

from analysis.resources import (
    COLUMNS,
    GAP,
    LIMIT_METRIC,
    RESOURCES_FILE,
    SAMPLER_APP,
    TOTAL_KEY,
)
from testbed.guardian import Record
from testbed.target import Target

TIMEOUT_S = 2  # per source and tick: a hung store costs a late sample, not a stuck run
MB = 1024 * 1024
CONNECTIONS_SQL = """
SELECT coalesce(application_name, ''), coalesce(state, ''), count(*)
FROM pg_stat_activity
WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
  AND coalesce(application_name, '') <> %s
GROUP BY 1, 2
"""

Row = tuple[float, str, str, str, float, str]


def is_app_part(name: str) -> bool:
    """The stack's app processes (testbed.stack APP_PARTS but the Cablecast simulator)."""
    return name in ("api", "worker") or name.startswith("worker-")


def gap(t: float, source: str, error: BaseException | str, key: str = "") -> Row:
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return (t, source, GAP, key, float("nan"), " ".join(text.split())[:300])


class PostgresSource:
    """Connections by application and state, on one connection of its own (reopened)."""

    name = "postgres"

    def __init__(self, url: str) -> None:
        self.url = url
        self.conn: psycopg.Connection[Any] | None = None
        self.limit: float | None = None  # max_connections: fixed while the server runs

    def read(self, t: float) -> list[Row]:
        try:
            if self.conn is None or self.conn.closed:
                self.conn = psycopg.connect(
                    self.url,
                    autocommit=True,
                    connect_timeout=TIMEOUT_S,
                    application_name=SAMPLER_APP,
                    options=f"-c statement_timeout={TIMEOUT_S * 1000}",
                )
                shown = self.conn.execute("SHOW max_connections").fetchone()
                self.limit = float(shown[0]) if shown is not None else None
            counts = self.conn.execute(CONNECTIONS_SQL, (SAMPLER_APP,)).fetchall()
        except psycopg.Error:
            self.close()
            raise
        rows: list[Row] = [
            (t, self.name, "connections", f"{a}|{s}", float(n), "") for a, s, n in counts
        ]
        rows.append((t, self.name, "connections", TOTAL_KEY, float(sum(n for *_, n in counts)), ""))
        if self.limit is not None:  # the ceiling a leak runs into (analysis.leaks)
            rows.append((t, self.name, LIMIT_METRIC, TOTAL_KEY, self.limit, ""))
        return rows

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(psycopg.Error):
                self.conn.close()
        self.conn = None


class RedisSource:
    """Redis' connected clients and used memory (the sampler's own client counts: 1)."""

    name = "redis"

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(
            url, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S
        )

    def read(self, t: float) -> list[Row]:
        info = self.client.info()
        return [
            (t, self.name, "clients", "", float(info["connected_clients"]), ""),
            (t, self.name, "used_memory_mb", "", float(info["used_memory"]) / MB, ""),
        ]

    def close(self) -> None:
        with contextlib.suppress(redis.RedisError):
            self.client.close()


class ProcessSource:
    """RSS, open files, threads and process count of each app part's process tree.

    The parts are read from the stack's pids.json each tick, so a restarted part is
    followed; a part that does not run that second is a gap of its key.
    """

    name = "process"

    def __init__(self, pids_file: Path) -> None:
        self.pids_file = pids_file

    def parts(self) -> dict[str, Record]:
        children = json.loads(self.pids_file.read_text()).get("children") or {}
        return {
            name: Record(**{k: v for k, v in rec.items() if k in Record.__dataclass_fields__})
            for name, rec in children.items()
            if is_app_part(name)
        }

    def read(self, t: float) -> list[Row]:
        rows: list[Row] = []
        for name, record in sorted(self.parts().items()):
            leader = record.process()
            if leader is None:
                rows.append(gap(t, self.name, "not running", key=name))
                continue
            rss = fds = threads = count = 0
            tree = [leader]
            with contextlib.suppress(psutil.Error):
                tree += leader.children(recursive=True)
            for proc in tree:
                try:
                    with proc.oneshot():
                        rss += proc.memory_info().rss
                        fds += proc.num_fds()
                        threads += proc.num_threads()
                    count += 1
                except psutil.Error:  # gone meanwhile, or not ours to read
                    continue
            rows += [
                (t, self.name, "rss_mb", name, rss / MB, ""),
                (t, self.name, "fds", name, float(fds), ""),
                (t, self.name, "threads", name, float(threads), ""),
                (t, self.name, "processes", name, float(count), ""),
            ]
        return rows

    def close(self) -> None:
        pass


Source = PostgresSource | RedisSource | ProcessSource


def sources_of(target: Target) -> list[Source]:
    """What can be sampled of a target: its direct stores, and its processes if ours."""
    sources: list[Source] = []
    if target.database_url:
        sources.append(PostgresSource(target.database_url))
    if target.pids_file is not None:
        sources.append(ProcessSource(target.pids_file))
    if target.redis_url:
        sources.append(RedisSource(target.redis_url))
    return sources


class Sampler:
    """A thread appending each tick's rows to RUN/resources.csv until stopped."""

    def __init__(self, sources: list[Source], path: Path, interval_s: float) -> None:
        self.sources = sources
        self.path = path
        self.interval_s = interval_s
        self.stopped = threading.Event()
        self.ticks = 0
        self.gaps: dict[str, int] = {}  # source -> gap rows written
        self.problem = ""  # why sampling ended early (the file could not be written)
        self._thread = threading.Thread(target=self._run, name="resource-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.stopped.set()
        self._thread.join(timeout=4 * TIMEOUT_S + self.interval_s)
        for source in self.sources:
            source.close()

    def tick(self) -> list[Row]:
        t = time.time()
        rows: list[Row] = []
        for source in self.sources:
            try:
                rows += source.read(t)
            except Exception as exc:  # any failure of a source is a gap, never the run's
                rows.append(gap(t, source.name, exc))
        for row in rows:
            if row[2] == GAP:
                self.gaps[row[1]] = self.gaps.get(row[1], 0) + 1
        self.ticks += 1
        return rows

    def _run(self) -> None:
        try:
            with self.path.open("a", newline="") as out:
                writer = csv.writer(out)
                if out.tell() == 0:
                    writer.writerow(COLUMNS)
                self._loop(writer, out)
        except OSError as exc:
            self.problem = f"{self.path}: {exc.strerror or exc}"

    def _loop(self, writer: Any, out: IO[str]) -> None:
        next_at = time.monotonic()
        while not self.stopped.is_set():
            writer.writerows(
                (f"{t:.3f}", s, m, k, "" if v != v else f"{v:.6g}", e)
                for t, s, m, k, v, e in self.tick()
            )
            out.flush()
            next_at += self.interval_s
            self.stopped.wait(max(0.0, next_at - time.monotonic()))

    def summary(self) -> str:
        """One line for the run's output: what was sampled, and the gaps."""
        names = ", ".join(s.name for s in self.sources) or "nothing"
        line = f"resources: {self.ticks} samples of {names} in {self.path.name}"
        if self.gaps:
            line += "; gaps: " + ", ".join(f"{s} {n}" for s, n in sorted(self.gaps.items()))
        if self.problem:
            line += f"; stopped early: {self.problem}"
        return line


@contextmanager
def sampling(target: Target, run_dir: Path, interval_s: float) -> Iterator[Sampler]:
    """Sample `target` into RUN/resources.csv for as long as the block runs."""
    sampler = Sampler(sources_of(target), run_dir / RESOURCES_FILE, interval_s)
    sampler.start()
    try:
        yield sampler
    finally:
        sampler.stop()

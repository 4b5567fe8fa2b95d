"""The resource sampler against the real reference stack: a row of every source each
tick, the connections of an app by name, gaps (not errors) when a source is unreachable,
and a stop however the block it samples ends."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import pytest

from analysis.resources import GAP, TOTAL_KEY, read_resources
from experiments.sampler import Sampler, sampling
from testbed.stack import Stack
from testbed.target import Target

INTERVAL_S = 0.2
CLOSED = "127.0.0.1:9"  # the discard port: nothing listens there


def wait_ticks(sampler: Sampler, n: int, deadline_s: float = 60.0) -> None:
    """Until the sampler wrote n ticks (a deadline against a hang, not a speed limit)."""
    end = time.monotonic() + deadline_s
    while sampler.ticks < n:
        assert time.monotonic() < end, f"the sampler wrote {sampler.ticks} ticks"
        time.sleep(INTERVAL_S)


def stack_target(stack: Stack) -> Target:
    return Target(
        stack.api_url,
        stack.fault_url,
        database_url=stack.database_url,
        redis_url=stack.redis_url,
        pids_file=stack.pids_file,
    )


def test_every_source_of_the_stack_gives_rows_and_an_app_is_counted_by_name(
    stack: Stack, tmp_path: Path
) -> None:
    with (
        psycopg.connect(stack.database_url, application_name="probe-app"),
        sampling(stack_target(stack), tmp_path, INTERVAL_S) as sampler,
    ):
        wait_ticks(sampler, 3)
    frame = read_resources(tmp_path)
    assert set(frame["source"]) == {"postgres", "process", "redis"}
    assert not (frame["metric"] == GAP).any(), frame[frame["metric"] == GAP]
    pg = frame[frame["source"] == "postgres"]
    assert set(pg.loc[pg["key"] == "probe-app|idle", "value"]) == {1.0}
    assert (pg.loc[pg["key"] == TOTAL_KEY, "value"] >= 1).all()
    procs = frame[frame["source"] == "process"]
    assert {"api", "worker"} <= set(procs["key"])
    assert (procs.loc[procs["metric"] == "rss_mb", "value"] > 0).all()
    assert (procs.loc[procs["metric"] == "threads", "value"] >= 1).all()
    redis = frame[frame["source"] == "redis"]
    assert (redis.loc[redis["metric"] == "clients", "value"] >= 1).all()
    assert not sampler._thread.is_alive()


def test_unreachable_sources_are_gaps_with_the_reason_and_sampling_goes_on(
    tmp_path: Path,
) -> None:
    target = Target(
        "http://127.0.0.1:9",
        "http://127.0.0.1:9",
        database_url=f"postgresql://x@{CLOSED}/x",
        redis_url=f"redis://{CLOSED}/0",
        pids_file=tmp_path / "no-pids.json",
    )
    with sampling(target, tmp_path, INTERVAL_S) as sampler:
        wait_ticks(sampler, 3)
    frame = read_resources(tmp_path)
    assert (frame["metric"] == GAP).all()
    assert set(frame["source"]) == {"postgres", "process", "redis"}
    assert frame.groupby("source").size().min() >= 3  # one gap per source and tick
    assert frame["error"].str.len().min() > 0
    assert "gaps: postgres" in sampler.summary()


def test_the_sampler_stops_when_the_run_fails(stack: Stack, tmp_path: Path) -> None:
    with (
        pytest.raises(KeyboardInterrupt),
        sampling(stack_target(stack), tmp_path, INTERVAL_S) as sampler,
    ):
        wait_ticks(sampler, 1)
        raise KeyboardInterrupt
    assert not sampler._thread.is_alive()
    rows = len(read_resources(tmp_path))
    time.sleep(3 * INTERVAL_S)
    assert len(read_resources(tmp_path)) == rows  # nothing written after the stop

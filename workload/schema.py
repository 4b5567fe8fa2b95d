"""The capture format's Parquet schema and its rows as a table, apart from the plug-in so
that readers (the analysis, a master's inbox, tests) need not import Locust (which
monkey-patches the process with gevent)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

SCHEMA = pa.schema(
    [
        ("t_start", pa.float64()),  # wall-clock start, epoch seconds
        ("name", pa.dictionary(pa.int32(), pa.string())),
        ("type", pa.dictionary(pa.int32(), pa.string())),
        ("latency_us", pa.int64()),
        ("ok", pa.bool_()),
        ("error", pa.string()),
        ("size", pa.int64()),
        ("pid", pa.int32()),
        ("worker", pa.int32()),
        ("intended_start", pa.float64()),  # epoch seconds; NaN when no schedule
        ("status", pa.int32()),  # HTTP status; 0 when no answer came (or a WORKFLOW entry)
        ("content_type", pa.string()),  # of a failed answer only, else null
        ("body", pa.string()),  # first 200 chars of a failed answer's body, else null
    ]
)


def rows_table(rows: list[tuple[Any, ...]], pid: int, worker: int) -> pa.Table:
    """The capture format's table of buffered rows: what a process writes to its Parquet file,
    and what a worker ships to its master (workload.shipping)."""
    cols = list(zip(*rows, strict=True))
    n = len(rows)
    return pa.table(
        {
            "t_start": pa.array(cols[0], pa.float64()),
            "name": pa.array(cols[1], pa.string()).dictionary_encode(),
            "type": pa.array(cols[2], pa.string()).dictionary_encode(),
            "latency_us": pa.array(cols[3], pa.int64()),
            "ok": pa.array(cols[4], pa.bool_()),
            "error": pa.array(cols[5], pa.string()),
            "size": pa.array(cols[6], pa.int64()),
            "pid": pa.array([pid] * n, pa.int32()),
            "worker": pa.array([worker] * n, pa.int32()),
            "intended_start": pa.array(cols[7], pa.float64()),
            "status": pa.array(cols[8], pa.int32()),
            "content_type": pa.array(cols[9], pa.string()),
            "body": pa.array(cols[10], pa.string()),
        }
    ).cast(SCHEMA)

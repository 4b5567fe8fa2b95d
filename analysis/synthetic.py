"""Synthetic runs in the capture format, for the benchmark and the gate's own tests.

Latencies are log-normal per name, scaled by a per-second "machine load" factor so that
neighbouring requests are correlated as on a shared CI box; fault windows slow every
request inside them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from workload.schema import SCHEMA


def synthetic_requests(
    n: int,
    names: int = 10,
    duration_s: float = 600.0,
    seed: int = 0,
    slow: dict[str, float] | None = None,
    error_rate: float = 0.005,
    faults: list[tuple[float, float, float]] | None = None,
    t0: float = 1_700_000_000.0,
    open_model: bool = True,
) -> pd.DataFrame:
    """``n`` GET requests over ``duration_s``; ``slow`` multiplies the latency of a row
    (keyed like the analysis, ``"GET /api/2"``); ``faults`` is ``(start_s, end_s, factor)``
    relative to ``t0``."""
    rng = np.random.default_rng(seed)
    labels = np.array([f"/api/{i}" for i in range(names)])
    weights = np.linspace(1.0, 3.0, names)
    name_idx = rng.choice(names, size=n, p=weights / weights.sum())
    t = np.sort(rng.uniform(0.0, duration_s, size=n))
    second = t.astype(np.int64)
    load = rng.lognormal(0.0, 0.15, size=int(duration_s) + 1)[second]
    median_ms = 5.0 + 10.0 * name_idx
    latency = median_ms * rng.lognormal(0.0, 0.5, size=n) * load
    for name, factor in (slow or {}).items():
        latency[labels[name_idx] == name.removeprefix("GET ")] *= factor
    for start, end, factor in faults or []:
        latency[(t >= start) & (t < end)] *= factor
    ok = rng.random(n) >= error_rate
    intended = np.where(open_model, t0 + t - rng.exponential(0.002, size=n) * load, np.nan)
    return pd.DataFrame(
        {
            "t_start": t0 + t,
            "name": labels[name_idx],
            "type": "GET",
            "latency_us": np.round(latency * 1000.0).astype(np.int64),
            "ok": ok,
            "error": pd.Series(["HTTPError: 500 Server Error"] * n).where(~ok, None),
            "size": rng.integers(100, 5000, size=n),
            "pid": 1,
            "worker": 0,
            "intended_start": intended,
            "status": np.where(ok, 200, 500),
            "content_type": None,
            "body": None,
        }
    )


def write_run(
    run_dir: Path,
    requests: pd.DataFrame,
    faults: list[dict[str, object]] | None = None,
    parts: int = 2,
    meta: dict[str, object] | None = None,
) -> Path:
    """Write requests as ``parts`` process files plus meta.json and faults.jsonl."""
    run_dir.mkdir(parents=True, exist_ok=True)
    for i, chunk in enumerate(np.array_split(np.arange(len(requests)), parts)):
        # Columns a test's frame leaves out are written as nulls (older runs lack them too).
        part = requests.iloc[chunk].assign(pid=1000 + i, worker=i).reindex(columns=SCHEMA.names)
        table = pa.Table.from_pandas(part, preserve_index=False).cast(SCHEMA)
        pq.write_table(table, run_dir / f"requests-{1000 + i}.parquet", compression="zstd")
    start = float(requests["t_start"].min()) if len(requests) else 0.0
    info = {"start": start, "end": float(requests["t_start"].max()), "locustfile": "synthetic"}
    (run_dir / "meta.json").write_text(json.dumps({**info, **(meta or {})}, indent=2) + "\n")
    if faults:
        (run_dir / "faults.jsonl").write_text("".join(json.dumps(f) + "\n" for f in faults))
    return run_dir

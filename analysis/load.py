"""Read a run folder (capture format) into plain DataFrames.

Errors name the file and what is wrong, so the CLI can print one line and exit 2.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

REQUIRED = ("t_start", "name", "latency_us", "ok")
# what the analysis reads; status, content_type and body only the findings (older runs lack them)
COLUMNS = (*REQUIRED, "type", "error", "intended_start", "status", "content_type", "body")


class InputError(Exception):
    """Missing, corrupt or empty input; the message says which file and why."""


@dataclass(frozen=True)
class Run:
    """One run: per-request samples plus what was recorded around them.

    ``samples`` columns: ``t`` (seconds since run start), ``name``, ``latency_ms``,
    ``corrected_ms`` (from intended start; equals latency_ms when none), ``ok``,
    ``error``. ``name`` is Locust's stats key, method and name (``"GET /api/vods"``,
    ``"WORKFLOW upload->published"``), so reads and writes of one path are never mixed.
    ``counts`` has one row per (name, second): ``n``, ``errors``; it is kept
    apart because a stored baseline caps samples but keeps every count.
    """

    samples: pd.DataFrame
    counts: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)
    faults: pd.DataFrame = field(default_factory=lambda: empty_faults())
    duration_s: float = 0.0
    source: str = ""


def empty_faults() -> pd.DataFrame:
    return pd.DataFrame({"start": [], "end": [], "link": [], "what": []})


def read_requests(run_dir: Path) -> pd.DataFrame:
    """Concatenate every ``requests-*.parquet`` of a run folder.

    Columns: ``t_start``, ``name``, ``latency_us``, ``ok`` and, when recorded, ``type``
    (the request method, or ``WORKFLOW`` for a timed sequence), ``error``,
    ``intended_start``.
    """
    if not run_dir.is_dir():
        raise InputError(f"{run_dir}: run folder does not exist")
    parts = sorted(run_dir.glob("requests-*.parquet"))
    if not parts:
        raise InputError(f"{run_dir}: no requests-*.parquet files (was analysis.capture loaded?)")
    tables = []
    for part in parts:
        try:
            schema = pq.read_schema(part)
            missing = [c for c in REQUIRED if c not in schema.names]
            if missing:
                raise InputError(f"{part}: missing columns {', '.join(missing)}")
            table = pq.read_table(part, columns=[c for c in COLUMNS if c in schema.names])
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"{part}: not a readable Parquet file ({exc})") from exc
        if not pa.types.is_dictionary(table.schema.field("name").type):
            table = table.set_column(
                table.schema.get_field_index("name"), "name", table["name"].dictionary_encode()
            )
        tables.append(table)
    try:
        df = pa.concat_tables(tables, promote_options="default").to_pandas()
    except pa.ArrowException as exc:
        raise InputError(f"{run_dir}: request files do not share a schema ({exc})") from exc
    if df.empty:
        raise InputError(f"{run_dir}: the request files hold no requests")
    return df


def read_meta(run_dir: Path) -> dict[str, Any]:
    """``meta.json`` as a dict; ``{}`` when absent (a run without a master is still usable)."""
    path = run_dir / "meta.json"
    if not path.exists():
        return {}
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(meta, dict):
        raise InputError(f"{path}: expected a JSON object")
    return meta


def read_faults(run_dir: Path) -> pd.DataFrame:
    """Fault windows from ``faults.jsonl`` (absolute epoch seconds); empty when absent."""
    path = run_dir / "faults.jsonl"
    if not path.exists():
        return empty_faults()
    rows = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            start, end = float(obj["start"]), float(obj["end"])
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(
                f"{path}:{lineno}: expected {{'start': s, 'end': s, ...}} ({exc!r})"
            ) from exc
        rows.append(
            {
                "start": start,
                "end": end,
                "link": str(obj.get("link", "")),
                "what": str(obj.get("what", "")),
            }
        )
    return pd.DataFrame(rows) if rows else empty_faults()


def request_keys(requests: pd.DataFrame) -> pd.Categorical:
    """``"METHOD name"`` per request, the key Locust's own statistics use (pure).

    Locust names a request by its URL or ``name=`` and keeps the method apart; grouping by
    the name alone would put ``GET /api/vods`` and ``POST /api/vods`` in one row. Files
    without a ``type`` column (or a request without one) keep the bare name.
    """
    names = pd.Categorical(requests["name"].astype(str))
    if "type" not in requests:
        return names
    types = pd.Categorical(requests["type"].astype("category"))
    n_names = max(len(names.categories), 1)
    pair = types.codes.astype(np.int64) * n_names + names.codes
    pairs, codes = np.unique(pair, return_inverse=True)
    labels = []
    for p in pairs:
        t, n = divmod(int(p), n_names)
        name = str(names.categories[n])
        labels.append(name if t < 0 else f"{types.categories[t]} {name}")
    return pd.Categorical.from_codes(codes.reshape(-1), categories=labels)


def to_samples(requests: pd.DataFrame, t0: float) -> pd.DataFrame:
    """Requests in capture format -> analysis samples relative to ``t0`` (pure)."""
    latency_ms = requests["latency_us"].to_numpy(dtype=np.float64) / 1000.0
    intended = (
        requests["intended_start"].to_numpy(dtype=np.float64)
        if "intended_start" in requests
        else np.full(len(requests), np.nan)
    )
    t_start = requests["t_start"].to_numpy(dtype=np.float64)
    corrected = np.where(np.isnan(intended), latency_ms, (t_start - intended) * 1000.0 + latency_ms)
    return pd.DataFrame(
        {
            "t": t_start - t0,
            "name": request_keys(requests),
            "latency_ms": latency_ms,
            "corrected_ms": np.maximum(corrected, latency_ms),
            "has_intended": ~np.isnan(intended),
            "ok": requests["ok"].to_numpy(dtype=bool),
            "error": requests["error"].to_numpy() if "error" in requests else None,
        }
    )


def per_second_counts(samples: pd.DataFrame) -> pd.DataFrame:
    """Requests and errors per (name, whole second since start) (pure)."""
    sec = np.floor(samples["t"].to_numpy()).astype(np.int64)
    frame = pd.DataFrame(
        {"name": samples["name"].to_numpy(), "second": sec, "err": ~samples["ok"].to_numpy()}
    )
    grouped = frame.groupby(["name", "second"], sort=True)["err"].agg(["size", "sum"])
    return grouped.rename(columns={"size": "n", "sum": "errors"}).reset_index()


def load_run(run_dir: Path | str) -> Run:
    """Load a run folder: samples, per-second counts, meta and fault windows."""
    run_dir = Path(run_dir)
    requests = read_requests(run_dir)
    meta = read_meta(run_dir)
    t_first = float(requests["t_start"].min())
    start = meta.get("start")
    t0 = float(start) if isinstance(start, int | float) and start <= t_first else t_first
    samples = to_samples(requests, t0)
    end_abs = (samples["t"] + samples["latency_ms"] / 1000.0).max()
    faults = read_faults(run_dir)
    if not faults.empty:
        faults = faults.assign(start=faults["start"] - t0, end=faults["end"] - t0)
    duration = float(end_abs) if math.isfinite(end_abs) else 0.0
    return Run(
        samples=samples,
        counts=per_second_counts(samples),
        meta={**meta, "t0": t0},
        faults=faults,
        duration_s=duration,
        source=str(run_dir),
    )

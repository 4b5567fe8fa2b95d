"""Stored baselines: a compact, committable copy of a run under ``config/baselines/<name>/``.

Layout: ``samples.parquet`` (at most ``cap`` requests per name, drawn uniformly with a
fixed seed, with their time so blocks can still be resampled), ``counts.parquet``
(every request and error per name and second, so throughput and error rate stay exact)
and ``baseline.json`` (source run, its meta, duration, cap, and ``keys``). A 10-minute
run of ten names stays around 1 MB.

Rows are keyed by method and name (``"GET /api/vods"``), see :func:`analysis.load.request_keys`.
Baselines saved before that (no ``keys`` in ``baseline.json``) merged GET and POST of one
path and cannot be split again: loading one asks for it to be saved anew.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from analysis.load import InputError, Run, empty_faults

DEFAULT_ROOT = Path("config/baselines")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
SAMPLE_COLUMNS = ["t", "name", "latency_ms", "corrected_ms", "has_intended", "ok"]
KEYS = "method name"  # what a row's ``name`` holds; recorded in baseline.json


def check_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise InputError(
            f"baseline name {name!r}: use 1-64 letters, digits, '.', '_' or '-' (no slashes)"
        )
    return name


def cap_samples(samples: pd.DataFrame, cap: int, seed: int = 1) -> pd.DataFrame:
    """At most ``cap`` rows per name, uniformly drawn (pure; keeps time order)."""
    rng = np.random.default_rng(seed)
    keys = pd.Series(rng.random(len(samples)), index=samples.index)
    rank = keys.groupby(samples["name"]).rank(method="first")
    return samples[rank <= cap].sort_values("t", kind="stable")


def save_baseline(run: Run, name: str, root: Path = DEFAULT_ROOT, cap: int = 20_000) -> Path:
    """Write the compact baseline of ``run`` and return its folder."""
    folder = Path(root) / check_name(name)
    folder.mkdir(parents=True, exist_ok=True)
    kept = cap_samples(run.samples[SAMPLE_COLUMNS], cap)
    table = pa.Table.from_pandas(kept, preserve_index=False)
    table = table.set_column(1, "name", table["name"].dictionary_encode())
    pq.write_table(table, folder / "samples.parquet", compression="zstd")
    pq.write_table(
        pa.Table.from_pandas(run.counts, preserve_index=False),
        folder / "counts.parquet",
        compression="zstd",
    )
    info = {
        "source": run.source,
        "created": time.time(),
        "duration_s": run.duration_s,
        "cap_per_name": cap,
        "keys": KEYS,
        "requests": int(run.counts["n"].sum()),
        "meta": {k: v for k, v in run.meta.items() if k != "options"}
        | ({"routes": routes} if (routes := routes_of(run.meta)) else {}),
    }
    (folder / "baseline.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    return folder


def routes_of(meta: dict[str, Any]) -> str | None:
    """The route profile a run (or a baseline's source run) was recorded with, if known."""
    options = meta.get("options")
    routes = meta.get("routes") or (options.get("routes") if isinstance(options, dict) else None)
    return routes if isinstance(routes, str) else None


def check_same_routes(base: Run, run: Run) -> None:
    """Refuse to gate a run against a baseline of another route profile: its rows are other
    endpoints, so every check would be a skip or a missing row, never a comparison."""
    theirs, ours = routes_of(base.meta), routes_of(run.meta)
    if theirs and ours and theirs != ours:
        raise InputError(
            f"{base.source} was recorded with routes {theirs!r}, {run.source or 'the run'} with "
            f"{ours!r}: gate against a baseline of the same target (record one with "
            f"`python -m analysis baseline record --name NAME`)"
        )


def known_baselines(root: Path = DEFAULT_ROOT) -> list[str]:
    """Names of the stored baselines under ``root`` (folders holding a baseline.json)."""
    return sorted(p.parent.name for p in Path(root).glob("*/baseline.json"))


def load_baseline(name: str, root: Path = DEFAULT_ROOT) -> Run:
    folder = Path(root) / check_name(name)
    if not folder.is_dir():
        known = known_baselines(root)
        raise InputError(
            f"{folder}: no baseline named {name!r}; known: {', '.join(known) or 'none'}"
            " (create one with `python -m analysis baseline save RUN --name NAME`)"
        )
    try:
        info = json.loads((folder / "baseline.json").read_text())
        samples = pq.read_table(folder / "samples.parquet").to_pandas()
        counts = pq.read_table(folder / "counts.parquet").to_pandas()
    except FileNotFoundError as exc:
        raise InputError(f"{exc.filename}: missing from baseline {name!r}") from exc
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise InputError(f"{folder}: baseline {name!r} is corrupt ({exc})") from exc
    if not isinstance(info, dict) or "duration_s" not in info:
        raise InputError(f"{folder}/baseline.json: expected an object with duration_s")
    if info.get("keys") != KEYS:
        raise InputError(
            f"{folder}: baseline {name!r} predates rows keyed by method and name (it mixes "
            f"GET and POST of one path); save it again (`make baseline` or "
            f"`python -m analysis baseline save RUN --name {name}`)"
        )
    missing = [c for c in SAMPLE_COLUMNS if c not in samples]
    if missing or samples.empty:
        raise InputError(f"{folder}/samples.parquet: empty or missing columns {missing}")
    samples["name"] = samples["name"].astype(str)
    return Run(
        samples=samples,
        counts=counts,
        meta=info.get("meta", {}),
        faults=empty_faults(),
        duration_s=float(info["duration_s"]),
        source=f"baseline {name}",
    )

"""The app's resources over a run: the file the sampler writes and how analysis reads it.

`experiments.sampler` appends one row per measured value, once a second, to
``RUN/resources.csv`` (CSV, appended and flushed each tick: a run killed half-way keeps
what was sampled). Long format, so a source that appears or vanishes mid-run (a
restarted worker, an unreachable database) needs no schema change:

- ``t``: epoch seconds, the clock of the requests' ``t_start``;
- ``source``: ``postgres``, ``process`` or ``redis``;
- ``metric``: ``connections`` (postgres), ``rss_mb``, ``fds``, ``threads``, ``processes``
  (process), ``clients``, ``used_memory_mb`` (redis); ``unreachable`` marks a gap;
- ``key``: what the value is of: ``APP|STATE`` for connections (``all|all`` the total),
  the stack's part name (``api``, ``worker``) for a process tree, ``""`` for Redis;
- ``value``: the figure (NaN in a gap row); ``error``: why a gap row is one (its
  ``key`` is ``""`` when the whole source was unreachable, else the part that was).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.load import InputError

RESOURCES_FILE = "resources.csv"
COLUMNS = ("t", "source", "metric", "key", "value", "error")
GAP = "unreachable"
TOTAL_KEY = "all|all"  # every connection of the database, whatever its app and state
SAMPLER_APP = "loadkit-resources"  # the sampler's own application_name, never counted

# PostgreSQL's max_connections, sampled beside the connections: what a leak runs into
LIMIT_METRIC = "max_connections"
UNITS = {
    "connections": "connections",
    "rss_mb": "MB",
    "fds": "open files",
    "threads": "threads",
    "processes": "processes",
    "clients": "clients",
    "used_memory_mb": "MB",
}


def empty() -> pd.DataFrame:
    return pd.DataFrame(
        {c: pd.Series(dtype=float if c in ("t", "value") else str) for c in COLUMNS}
    )


def read_resources(run_dir: Path) -> pd.DataFrame:
    """The samples of a run (COLUMNS); empty when the run has none (older runs, no sampler).

    InputError names the file when it exists but cannot be read.
    """
    path = run_dir / RESOURCES_FILE
    if not path.exists():
        return empty()
    try:
        frame = pd.read_csv(path, keep_default_na=False, na_values={"value": [""]})
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise InputError(f"{path}: not a readable resources file ({exc})") from None
    missing = [c for c in COLUMNS if c not in frame]
    if missing:
        raise InputError(f"{path}: missing columns {', '.join(missing)}")
    frame = frame[list(COLUMNS)]
    for col in ("source", "metric", "key", "error"):
        frame[col] = frame[col].astype(str)
    frame["t"] = pd.to_numeric(frame["t"], errors="coerce")
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce")
    return frame.dropna(subset=["t"]).reset_index(drop=True)


def label(source: str, metric: str, key: str) -> str:
    """A series in words: ``postgres connections app 'x' idle``, ``process rss_mb api``."""
    if source == "postgres" and metric == "connections":
        app, _, state = key.partition("|")
        if key == TOTAL_KEY:
            return "postgres connections (all)"
        return f"postgres connections app {app or '-'!r} {state or '-'}"
    return " ".join(p for p in (source, metric, key) if p)


def gaps(resources: pd.DataFrame) -> pd.DataFrame:
    """The gap rows: when each source could not be read and why (pure)."""
    return resources[resources["metric"] == GAP].reset_index(drop=True)


def series(resources: pd.DataFrame) -> pd.DataFrame:
    """Measured values only, one column per (source, metric, key), index epoch t (pure).

    A gap of a source makes NaN in its columns, so a chart breaks its line there.
    """
    values = resources[resources["metric"] != GAP]
    if values.empty:
        return pd.DataFrame()
    wide = values.pivot_table(
        index="t", columns=["source", "metric", "key"], values="value", aggfunc="last"
    )
    pg_cols = [c for c in wide.columns if c[:2] == ("postgres", "connections")]
    total = ("postgres", "connections", TOTAL_KEY)
    if total in wide.columns:  # sampled: a state with no connection then is 0, not unknown
        seen = wide[total].notna()
        wide.loc[seen, pg_cols] = wide.loc[seen, pg_cols].fillna(0.0)
    gap_rows = resources.loc[resources["metric"] == GAP, ["t", "source", "key"]]
    for t, source, key in gap_rows.itertuples(index=False):
        # a gap of the whole source (key ""), or of one of its keys (a process tree gone)
        cols = [c for c in wide.columns if c[0] == source and (not key or c[2] == key)]
        if cols:
            wide.loc[t, cols] = float("nan")
    return wide.sort_index()


CONFIG_FILE = Path(__file__).resolve().parents[1] / "config" / "resources.toml"


def resources_config(path: Path = CONFIG_FILE) -> dict[str, Any]:
    """config/resources.toml: [sampler] and [leaks]; InputError names what is wrong."""
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML: {exc}") from None
    if unknown := sorted(set(data) - {"sampler", "leaks"}):
        raise InputError(f"{path}: unknown sections {', '.join(unknown)}; known: leaks, sampler")
    return data


def sampler_interval(path: Path = CONFIG_FILE) -> float:
    """Seconds between two samples ([sampler] interval_s)."""
    value = resources_config(path).get("sampler", {}).get("interval_s", 1.0)
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        raise InputError(f"{path}: [sampler] interval_s = {value!r}: expected seconds > 0")
    return float(value)

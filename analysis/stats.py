"""Descriptive statistics of one run: exact percentiles, throughput, errors, time series.

Pure functions on the ``samples``/``counts`` frames of :class:`analysis.load.Run`.
Percentiles are exact (numpy's default linear interpolation on every sample), not
bucketed like Locust's.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from analysis.config import quantile_of

OVERALL = "ALL"
QUANTILES = (0.5, 0.95, 0.99)


def qname(q: float) -> str:
    """0.95 -> "p95", 0.999 -> "p99.9"."""
    return f"p{q * 100:g}"


def percentiles(
    samples: pd.DataFrame, qs: tuple[float, ...] = QUANTILES, column: str = "latency_ms"
) -> pd.DataFrame:
    """Exact percentiles per name plus an ``ALL`` row; columns ``p50`` ... (ms)."""
    rows = {
        str(name): np.quantile(group[column].to_numpy(), qs)
        for name, group in sorted(samples.groupby("name"), key=lambda x: str(x[0]))
    }
    rows[OVERALL] = np.quantile(samples[column].to_numpy(), qs)
    return pd.DataFrame.from_dict(rows, orient="index", columns=[qname(q) for q in qs])


def metric_value(samples: pd.DataFrame, duration_s: float, metric: str) -> float:
    """One metric (as named in gate thresholds) over the given samples."""
    if samples.empty:
        return float("nan")
    if metric == "error_rate":
        return float((~samples["ok"]).mean())
    if metric == "throughput":
        return len(samples) / duration_s if duration_s > 0 else float("nan")
    return latency_metric(samples, metric)


def latency_metric(samples: pd.DataFrame, metric: str, min_tail: float | None = None) -> float:
    """A latency metric (mean, max or a percentile, raw or ``corrected_``) of non-empty
    samples. With ``min_tail``, a percentile with fewer samples above it is NaN: too few
    to tell it from noise (the paired gate's slices are small)."""
    column = "corrected_ms" if metric.startswith("corrected_") else "latency_ms"
    values = samples[column].to_numpy()
    base = metric.removeprefix("corrected_")
    if base == "mean":
        return float(values.mean())
    if base == "max":
        return float(values.max())
    q = quantile_of(metric)
    if q is None:
        raise ValueError(f"unknown metric {metric!r}")
    if min_tail is not None and len(values) * (1.0 - q) < min_tail:
        return math.nan
    return float(np.quantile(values, q))


def summarise(
    samples: pd.DataFrame, duration_s: float, qs: tuple[float, ...] = QUANTILES
) -> pd.DataFrame:
    """Per name and overall: requests, errors, error rate, req/s, mean/max and percentiles.

    Corrected-latency percentiles (``corrected_p95`` ...) are added when any request had
    an intended start time.
    """
    groups = sorted(((str(n), g) for n, g in samples.groupby("name")), key=lambda x: x[0])
    groups.append((OVERALL, samples))
    with_corrected = bool(samples["has_intended"].any()) if "has_intended" in samples else False
    rows = []
    for name, g in groups:
        lat = g["latency_ms"].to_numpy()
        errors = int((~g["ok"]).sum())
        row: dict[str, float | int | str] = {
            "name": name,
            "requests": len(g),
            "errors": errors,
            "error_rate": errors / len(g),
            "rps": len(g) / duration_s if duration_s > 0 else float("nan"),
            "mean_ms": float(lat.mean()),
            "max_ms": float(lat.max()),
        }
        row.update(zip([qname(q) for q in qs], np.quantile(lat, qs).tolist(), strict=True))
        if with_corrected:
            cor = np.quantile(g["corrected_ms"].to_numpy(), qs).tolist()
            row.update(zip([f"corrected_{qname(q)}" for q in qs], cor, strict=True))
        rows.append(row)
    return pd.DataFrame(rows).set_index("name")


def timeseries(
    samples: pd.DataFrame, bucket_s: float = 1.0, qs: tuple[float, ...] = QUANTILES
) -> pd.DataFrame:
    """Per time bucket (index: bucket start, seconds since run start): req/s, errors/s and
    latency percentiles, service and corrected."""
    bucket = (np.floor(samples["t"].to_numpy() / bucket_s) * bucket_s).round(6)
    frame = pd.DataFrame(
        {
            "t": bucket,
            "latency_ms": samples["latency_ms"].to_numpy(),
            "corrected_ms": samples["corrected_ms"].to_numpy(),
            "err": ~samples["ok"].to_numpy(),
        }
    )
    grouped = frame.groupby("t", sort=True)
    out = pd.DataFrame(
        {
            "rps": grouped.size() / bucket_s,
            "errors_per_s": grouped["err"].sum() / bucket_s,
        }
    )
    lat = grouped["latency_ms"].quantile(list(qs)).unstack()
    lat.columns = [qname(q) for q in qs]
    cor = grouped["corrected_ms"].quantile(list(qs)).unstack()
    cor.columns = [f"corrected_{qname(q)}" for q in qs]
    return out.join(lat).join(cor)

"""Statistics of one run on frames whose answers can be computed by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.load import per_second_counts, to_samples
from analysis.stats import metric_value, percentiles, summarise, timeseries

from .conftest import make_samples


def test_percentiles_are_exact_linear_interpolation() -> None:
    # 1..101 ms: p50 = 51, p95 = 96, p99 = 100 exactly (linear interpolation, n-1 = 100).
    s = make_samples([float(x) for x in range(1, 102)])
    p = percentiles(s)
    assert p.loc["a"].tolist() == pytest.approx([51.0, 96.0, 100.0])
    assert p.loc["ALL"].tolist() == pytest.approx([51.0, 96.0, 100.0])


def test_percentiles_per_name_and_overall() -> None:
    s = make_samples([1, 2, 3, 10, 20, 30], names=["a"] * 3 + ["b"] * 3)
    p = percentiles(s, qs=(0.5,))
    assert p["p50"].to_dict() == {"a": 2.0, "b": 20.0, "ALL": 6.5}


def test_error_rate_and_throughput() -> None:
    s = make_samples([1.0] * 10, ok=[True] * 7 + [False] * 3)
    assert metric_value(s, 5.0, "error_rate") == pytest.approx(0.3)
    assert metric_value(s, 5.0, "throughput") == pytest.approx(2.0)
    assert metric_value(s, 5.0, "max") == 1.0


def test_summary_has_counts_rates_and_corrected_columns() -> None:
    s = make_samples([10, 20, 30, 40], ok=[True, False, True, True], corrected_ms=[10, 25, 30, 80])
    out = summarise(s, duration_s=2.0)
    row = out.loc["ALL"]
    assert (row["requests"], row["errors"], row["error_rate"], row["rps"]) == (4, 1, 0.25, 2.0)
    assert row["p50"] == pytest.approx(25.0)
    assert row["corrected_p50"] == pytest.approx(27.5)
    assert row["mean_ms"] == pytest.approx(25.0)


def test_corrected_latency_counts_from_intended_start() -> None:
    # Sent 0.5 s late with 100 ms service time: the user waited 600 ms.
    req = pd.DataFrame(
        {
            "t_start": [100.5, 101.0],
            "name": ["a", "a"],
            "latency_us": [100_000, 2_000],
            "ok": [True, True],
            "intended_start": [100.0, np.nan],
        }
    )
    s = to_samples(req, t0=100.0)
    assert s["t"].tolist() == [0.5, 1.0]
    assert s["latency_ms"].tolist() == [100.0, 2.0]
    assert s["corrected_ms"].tolist() == pytest.approx([600.0, 2.0])
    assert s["has_intended"].tolist() == [True, False]


def test_per_second_counts_and_timeseries() -> None:
    s = make_samples(
        [1, 2, 3, 4, 5], ok=[True, False, True, True, False], t=[0.1, 0.5, 0.9, 1.2, 2.7]
    )
    counts = per_second_counts(s)
    assert counts[["second", "n", "errors"]].values.tolist() == [[0, 3, 1], [1, 1, 0], [2, 1, 1]]
    ts = timeseries(s)
    assert ts["rps"].tolist() == [3.0, 1.0, 1.0]
    assert ts["errors_per_s"].tolist() == [1.0, 0.0, 1.0]
    assert ts.loc[0.0, "p50"] == 2.0

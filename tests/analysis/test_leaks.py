"""The leak finding on synthetic resource series: what grows without levelling off is a
leak, with its slope and route mix; a pool that fills then levels off, a noisy flat
series, a small drift and a refill after an outage are not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.findings import to_text
from analysis.leaks import LEAK, LeakRules, leaks, load_leak_rules, trend
from analysis.load import InputError
from analysis.resources import GAP, TOTAL_KEY, read_resources, series

T0 = 1_700_000_000.0
RULES = LeakRules(min_growth={"connections": 5, "rss_mb": 64})


def frame(values: np.ndarray, metric: str = "connections", key: str = "|idle") -> pd.DataFrame:
    """One series sampled each second from T0, in the sampler's long format."""
    n = len(values)
    return pd.DataFrame(
        {
            "t": T0 + np.arange(n, dtype=float),
            "source": "postgres" if metric == "connections" else "process",
            "metric": metric,
            "key": key,
            "value": values.astype(float),
            "error": "",
        }
    )


def requests(n_seconds: int) -> pd.DataFrame:
    """Two requests a second: a list route, and a create every other second."""
    t = T0 + np.arange(0, n_seconds, 0.5)
    names = np.where(np.arange(len(t)) % 4 == 0, "/api/vod/create", "/api/vods")
    types = np.where(names == "/api/vods", "GET", "POST")
    return pd.DataFrame({"t_start": t, "name": names, "type": types})


NO_FAULTS = pd.DataFrame({"start": [], "end": [], "link": [], "what": []})
rng = np.random.default_rng(7)


def test_a_series_that_keeps_growing_is_a_leak_with_its_slope_and_route_mix() -> None:
    values = 4 + np.floor(np.arange(600) / 20) + rng.integers(-2, 3, 600)  # +3/min
    found = leaks(frame(values), requests(600), NO_FAULTS, RULES, T0)
    assert list(found["kind"]) == [LEAK]
    row = found.iloc[0]
    assert row["endpoint"] == "postgres connections app '-' idle"
    assert "grows +3.0" in row["detail"] or "grows +2.9" in row["detail"], row["detail"]
    assert "route mix: GET /api/vods 8" in row["detail"]  # 3 of 4 requests of the span
    assert "POST /api/vod/create" in row["detail"]
    assert f"{LEAK:<12}" in to_text(found)


def test_a_pool_that_fills_then_levels_off_is_no_leak() -> None:
    values = np.minimum(5 + np.arange(600) / 6, 40) + rng.integers(-2, 3, 600)
    assert trend(np.arange(600.0), values, 0.99).rising  # the whole run rises ...
    assert leaks(frame(values), requests(600), NO_FAULTS, RULES, T0).empty  # ... not the end


def test_a_noisy_flat_series_is_no_leak() -> None:
    values = 20 + rng.integers(-6, 7, 600)
    assert leaks(frame(values), requests(600), NO_FAULTS, RULES, T0).empty


def test_a_steady_rise_below_the_minimum_growth_is_no_leak() -> None:
    values = 10 + np.arange(600) / 200  # +3 in ten minutes: real, harmless
    assert leaks(frame(values), requests(600), NO_FAULTS, RULES, T0).empty
    assert not leaks(
        frame(values), requests(600), NO_FAULTS, LeakRules(min_growth={"connections": 2}), T0
    ).empty  # the same series, a lower bar: found


def test_connections_piling_up_during_a_fault_are_no_leak() -> None:
    t = np.arange(600)
    values = np.where(t < 300, 10.0, 10 + (t - 300) / 4)  # a slow database holds more
    faults = pd.DataFrame(
        {"start": [T0 + 300], "end": [T0 + 600], "link": ["postgres"], "what": ["latency"]}
    )
    assert not leaks(frame(values), requests(600), NO_FAULTS, RULES, T0).empty  # unexcused
    assert leaks(frame(values), requests(600), faults, RULES, T0).empty


def test_a_metric_without_a_minimum_is_not_judged_and_gaps_break_the_series() -> None:
    values = 100 + np.arange(600) / 2
    assert leaks(frame(values, "threads", "api"), requests(600), NO_FAULTS, RULES, T0).empty
    data = frame(values, "rss_mb", "api")
    gap = pd.DataFrame(
        [
            {
                "t": T0 + 300.5,
                "source": "process",
                "metric": GAP,
                "key": "",
                "value": np.nan,
                "error": "NoSuchProcess",
            }
        ]
    )
    wide = series(pd.concat([data, gap], ignore_index=True))
    assert np.isnan(wide.loc[T0 + 300.5, ("process", "rss_mb", "api")])
    assert not leaks(pd.concat([data, gap]), requests(600), NO_FAULTS, RULES, T0).empty


def test_states_without_connections_count_zero_while_the_database_was_read() -> None:
    both = pd.concat([frame(np.full(10, 3.0), key=TOTAL_KEY), frame(np.full(5, 3.0))])
    wide = series(both)
    assert list(wide[("postgres", "connections", "|idle")].iloc[5:]) == [0.0] * 5


def test_the_configured_rules_load_and_bad_ones_are_named(tmp_path: Path) -> None:
    rules = load_leak_rules()
    assert rules.min_growth["connections"] > 0 and 0 < rules.confidence < 1
    bad = tmp_path / "resources.toml"
    bad.write_text("[leaks]\nslope = 1\n")
    with pytest.raises(InputError, match=r"unknown keys slope"):
        load_leak_rules(bad)
    (tmp_path / "resources.csv").write_text("t,source\n1,x\n")
    with pytest.raises(InputError, match="missing columns metric"):
        read_resources(tmp_path)


def test_a_leak_row_reads_in_the_html_findings_and_the_resources_chart_draws() -> None:
    from analysis import charts
    from analysis.html import findings_section

    values = 4 + np.arange(600) / 20
    found = leaks(frame(values), requests(600), NO_FAULTS, RULES, T0)
    html = "".join(findings_section(found))
    assert "postgres connections app &#x27;-&#x27; idle" in html and "/min" in html
    faults = pd.DataFrame({"start": [100.0], "end": [130.0], "link": ["redis"], "what": ["down"]})
    fig = charts.resources_over_time(series(frame(values)), faults, T0)
    assert fig.axes[0].get_title().startswith("PostgreSQL connections")
    assert len(fig.axes[0].patches) == 1  # the fault window, shaded


def test_a_leak_that_runs_into_max_connections_is_a_leak_though_it_levels_off_there() -> None:
    """Seen on the real app (selftest, seed connection-leak): 17 -> 199 connections in
    220 s, then flat at the server's 200, which the last-third test read as settled."""
    values = np.minimum(10 + np.arange(300) * 1.0, 199.0)  # +60/min, flat from 189 s on
    leaking = frame(values, key=TOTAL_KEY)
    assert leaks(leaking, requests(300), NO_FAULTS, RULES, T0).empty  # no ceiling known
    limit = frame(np.full(300, 200.0), key=TOTAL_KEY).assign(metric="max_connections")
    found = leaks(pd.concat([leaking, limit]), requests(300), NO_FAULTS, RULES, T0)
    assert list(found["endpoint"]) == ["postgres connections (all)"]
    assert "until it reached 199 of the server's 200 (max_connections)" in found.iloc[0]["detail"]
    pool = np.minimum(10 + np.arange(300) * 1.0, 60.0)  # fills to 60 of 200, then settles
    settled = pd.concat([frame(pool, key=TOTAL_KEY), limit])
    assert leaks(settled, requests(300), NO_FAULTS, RULES, T0).empty

"""The knee of a step load, on synthetic steps whose answer is known."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.capacity import knee, step_table, step_windows
from experiments.capacity_run import render_capacity, what_broke
from experiments.experiment import Tolerance
from experiments.written_values import parse_bound

T0 = 2_000_000.0
BOUNDS = Tolerance(
    error_rate=parse_bound("< 5%", "error_rate"), p95_ms=parse_bound("< 2500", "p95_ms")
)


def steps(per_step: list[tuple[int, float, float, int]], step_s: float = 60) -> pd.DataFrame:
    """(users, median ms, error share, requests) per step -> a requests frame."""
    rng = np.random.default_rng(7)
    rows = []
    for i, (_, ms, errors, n) in enumerate(per_step):
        t = T0 + i * step_s + np.sort(rng.uniform(0, step_s, n))
        lat = ms * rng.lognormal(0, 0.3, n)
        ok = rng.uniform(0, 1, n) >= errors
        rows.append(pd.DataFrame({"t_start": t, "latency_us": lat * 1000, "ok": ok}))
    return pd.concat(rows, ignore_index=True)


def found(per_step: list[tuple[int, float, float, int]], min_samples: int = 40):
    stages = [((i + 1) * 60.0, users) for i, (users, *_rest) in enumerate(per_step)]
    table = step_table(steps(per_step), step_windows(stages, T0, settle_s=10))
    return table, knee(table, lambda row: what_broke(row, BOUNDS), min_samples)


def test_the_knee_is_the_last_step_within_bounds_before_latency_breaks() -> None:
    table, k = found([(10, 100, 0, 400), (20, 200, 0, 800), (30, 900, 0, 1100), (40, 4000, 0, 900)])
    assert (k.users, k.step, k.broke_at) == (30, 3, 40)
    assert k.rps == table.loc[2, "rps"] and 15 < k.rps < 25  # ~1100 * 50/60 s / 50 s
    assert "p95_ms" in k.why and "at 40 users" in k.why


def test_errors_break_a_step_too_and_a_later_good_step_does_not_count() -> None:
    _, k = found([(10, 100, 0, 400), (20, 100, 0.2, 800), (30, 100, 0, 900)])
    assert (k.users, k.broke_at) == (10, 20) and "error_rate" in k.why


def test_no_knee_when_the_first_step_breaks_and_none_when_every_step_holds() -> None:
    _, first = found([(10, 5000, 0, 400), (20, 100, 0, 400)])
    assert first.users is None and first.broke_at == 10
    _, held = found([(10, 100, 0, 400), (20, 100, 0, 400)])
    assert held.users == 20 and held.broke_at is None and "every step held" in held.why


def test_a_step_with_too_few_samples_ends_the_search_with_its_count() -> None:
    _, k = found([(10, 100, 0, 400), (20, 100, 0, 30), (30, 9000, 0, 400)])
    assert k.users == 10 and k.broke_at is None
    assert k.why.startswith("step 2 (20 users) had ")
    assert k.why.endswith("judged requests, under the target 40: no verdict past it")


def test_the_printed_capacity_names_the_knee() -> None:
    table, k = found([(10, 100, 0, 400), (20, 4000, 0, 400)])
    from dataclasses import asdict

    report = {"steps": table.to_dict("records"), "knee": asdict(k), "chart": "capacity.png"}
    text = "\n".join(render_capacity(report))
    assert "knee: 10 users" in text and "requests/s sustained within the bounds" in text


def test_the_html_report_shows_the_knee_and_its_chart() -> None:
    from dataclasses import asdict

    from analysis.experiment_report import capacity_part

    table, k = found([(10, 100, 0, 400), (20, 4000, 0, 400)])
    html = "".join(capacity_part({"steps": table.to_dict("records"), "knee": asdict(k)}))
    assert "Knee: 10 users" in html and "data:image/png;base64," in html


def test_the_apps_steady_defects_do_not_count_as_step_errors() -> None:
    requests = steps([(10, 100, 0.5, 400)])
    requests["defect"] = ~requests["ok"]
    table = step_table(requests, step_windows([(60.0, 10)], T0, settle_s=0))
    assert table.loc[0, "error_rate"] == 0.0 and table.loc[0, "timed"] == 400


def test_only_a_step_load_may_go_without_faults(tmp_path) -> None:
    import pytest

    from experiments.errors import ExperimentError
    from experiments.experiment import REPO_ROOT
    from experiments.experiment_file import load_experiment

    capacity = load_experiment(REPO_ROOT / "config/experiments/archivist-capacity.toml")
    assert capacity.faults == () and capacity.load.shape == "step"
    plain = tmp_path / "plain.toml"
    plain.write_text(
        'title = "t"\n[load]\nlocustfile = "locustfiles/vod.py"\nusers = 1\nspawn_rate = 1\n'
        'duration = "10s"\n[hypothesis]\nerror_rate = "< 1%"\nrecovers_within = "5s"\n'
    )
    with pytest.raises(ExperimentError, match="faults must be a non-empty array"):
        load_experiment(plain)


def test_the_progress_of_a_run_without_faults_is_before_throughout() -> None:
    from experiments.experiment import REPO_ROOT
    from experiments.experiment_file import load_experiment
    from experiments.runner import phase_at

    capacity = load_experiment(REPO_ROOT / "config/experiments/archivist-capacity.toml")
    assert phase_at(capacity, 0.0) == phase_at(capacity, 300.0) == "before"

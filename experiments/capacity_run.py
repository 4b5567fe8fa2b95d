"""A capacity experiment's result: the step load's figures per step, its knee and chart.

The experiment's `[load] shape = "step"` reads its stages from the shapes file its
options name (`shapes-file`, default config/shapes.toml); `[load] warmup` is left out
at the start of every step (new users' first look round). Each step is held to the
hypothesis' before-phase bounds (error_rate without the profile's steady defects, as
the verdict counts it; p95_ms of p95_routes) and needs
`min_samples` judged requests; the knee (analysis.capacity) is the last step that held.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.capacity import knee, step_table, step_windows
from analysis.charts import capacity_steps
from experiments.errors import RunError
from experiments.experiment import REPO_ROOT, Experiment, Tolerance
from experiments.verdict import KNOWN_DEFECT
from workload.stages import SHAPES_TOML, stages_of
from workload.tomlconfig import ConfigError

CHART = "capacity.png"


def what_broke(row: pd.Series, bounds: Tolerance) -> str:
    """'' when a step's figures are within the bounds, else which bound broke."""
    broke = []
    for metric, bound in (("error_rate", bounds.error_rate), ("p95_ms", bounds.p95_ms)):
        value = float(row[metric])
        if bound is not None and not bound.holds(value):
            shown = f"{100 * value:.1f}%" if metric == "error_rate" else f"{value:.0f}"
            broke.append(f"{metric} {shown} (bound {bound})")
    return ", ".join(broke)


def capacity_report(
    experiment: Experiment, requests: pd.DataFrame, load_start: float, run_dir: Path
) -> dict[str, Any]:
    """Per-step figures and the knee (JSON for verdict.json); writes the chart."""
    shapes = Path(str(experiment.load.options.get("shapes-file") or SHAPES_TOML))
    try:
        stages = stages_of("step", shapes if shapes.is_absolute() else REPO_ROOT / shapes)
    except ConfigError as exc:
        raise RunError(str(exc)) from None
    windows = step_windows(
        [(s.until_s, s.users) for s in stages], load_start, experiment.load.warmup
    )
    requests = requests.sort_values("t_start")
    if "error" in requests:  # the profile's steady defects count apart, as in the verdict
        said = requests["error"].fillna("").astype(str)
        requests = requests.assign(defect=said.str.startswith(KNOWN_DEFECT))
    table = step_table(requests, windows)
    bounds = experiment.hypothesis.before
    found = knee(table, lambda row: what_broke(row, bounds), experiment.hypothesis.min_samples)
    limit = bounds.p95_ms.limit if bounds.p95_ms is not None else None
    capacity_steps(table, found.users, limit).savefig(run_dir / CHART, dpi=80)
    records = [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        for row in table.to_dict("records")
    ]
    return {"steps": records, "knee": asdict(found), "chart": CHART}


def render_capacity(capacity: dict[str, Any]) -> list[str]:
    """The step table and the knee as the CLI prints them."""
    lines = ["", "capacity (step load):", f"{'users':>6} {'requests':>9} {'req/s':>7} "
             f"{'errors':>7} {'p95 ms':>8} {'judged':>7}"]  # fmt: skip
    for s in capacity["steps"]:
        err = "-" if s["error_rate"] is None else f"{100 * s['error_rate']:.1f}%"
        p95 = "-" if s["p95_ms"] is None else f"{s['p95_ms']:.0f}"
        lines.append(
            f"{s['users']:>6} {s['requests']:>9} {s['rps']:>7.1f} {err:>7} {p95:>8} {s['timed']:>7}"
        )
    k = capacity["knee"]
    if k["users"] is None:
        lines.append(f"knee: none (not even the first step held): {k['why']}")
    else:
        lines.append(
            f"knee: {k['users']} users, {k['rps']:.1f} requests/s sustained within the bounds; "
            f"{k['why']} (chart: {capacity['chart']})"
        )
    return lines

"""What a person reads: one-line errors that list real names, a gate headline that counts
skips, skip reasons naming the unmet minimum, and numbers in the unit of their threshold."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from analysis.baseline import save_baseline
from analysis.cli import main
from analysis.compare import compare_runs
from analysis.config import Settings, parse_config
from analysis.gate import evaluate
from analysis.load import load_run
from analysis.synthetic import synthetic_requests, write_run

from .conftest import PROJECT_CONFIG, make_run, make_samples, run_cli

RAW = re.compile(r"\bnan\b|\bNaN\b|\bTrue\b|\bFalse\b|\de[+-]\d\d", re.IGNORECASE)


def test_unknown_baseline_lists_the_stored_names_in_one_line(
    synthetic_pair, tmp_path: Path
) -> None:
    base, cur = synthetic_pair
    root = tmp_path / "baselines"
    run = load_run(base)
    for name in ("beta", "alpha"):
        save_baseline(run, name, root)
    out = run_cli("compare", "nosuchbase", str(cur), "--root", str(root))
    assert out.returncode == 2
    assert out.stdout == "" and out.stderr.count("\n") == 1, out.stderr
    assert "no baseline named 'nosuchbase'; known: alpha, beta " in out.stderr


def _few(n: int, seconds: float) -> object:
    return make_run(make_samples([10.0] * n, t=list(np.linspace(0, seconds, n, False))), seconds)


@pytest.mark.parametrize(
    ("base_n", "cur_n", "cur_s", "metric", "why"),
    [
        (400, 12, 40.0, "p95", "only 12 requests in the run, 30 needed"),
        (12, 400, 40.0, "error_rate", "only 12 requests in the baseline, 30 needed"),
        (400, 400, 4.0, "p50", "only 4 blocks of 1 s with requests in the run, 10 needed"),
        (400, 400, 4.0, "throughput", "only 4 blocks of 1 s in the run, 10 needed"),
        (400, 1000, 40.0, "p99", "only 4 requests above p99 in the baseline, 20 needed"),
    ],
)
def test_each_skip_names_the_unmet_minimum(
    base_n: int, cur_n: int, cur_s: float, metric: str, why: str
) -> None:
    settings = Settings(resamples=200, min_samples=30, min_blocks=10, min_tail=20)
    changes = compare_runs(_few(base_n, 40.0), _few(cur_n, cur_s), settings)  # type: ignore[arg-type]
    row = changes.set_index(["name", "metric"]).loc[("a", metric)]
    assert not row["enough"] and row["shortfall"] == why
    config = parse_config(
        {
            "settings": {"resamples": 200, "min_samples": 30, "min_blocks": 10},
            "relative": {"per_name": [f"{metric} {'-' if metric == 'throughput' else '+'}20%"]},
        }
    )
    checks = evaluate(_few(cur_n, cur_s), config, _few(base_n, 40.0))  # type: ignore[arg-type]
    skipped = checks.set_index("scope").loc["a"]
    assert (skipped["status"], skipped["detail"]) == ("skip", why)


def test_gate_headline_counts_passed_failed_and_skipped(
    synthetic_pair, tmp_path: Path, gate_config: Path, capsys
) -> None:
    base, _ = synthetic_pair
    # Too few requests per endpoint for per-name checks: most of them are skipped.
    small = write_run(tmp_path / "small", synthetic_requests(1500, names=4, duration_s=60))
    junit = tmp_path / "gate.xml"
    code = main(
        ["gate", str(small), "--baseline", str(base), "--config", str(gate_config),
         "--junit", str(junit)]
    )  # fmt: skip
    out = capsys.readouterr().out
    statuses = re.findall(r"^\| (?:✅ pass|❌ FAIL|⚪ skip) \|", out, re.MULTILINE)
    n_pass = sum("pass" in s for s in statuses)
    n_fail = sum("FAIL" in s for s in statuses)
    n_skip = sum("skip" in s for s in statuses)
    assert n_skip > 0
    assert (
        f": {len(statuses)} checks: {n_pass} passed, {n_fail} failed, {n_skip} skipped." in out
    ), out.splitlines()[1]
    assert code == (1 if n_fail else 0)
    assert "only " in out and " needed" in out  # the reasons of the skips
    assert "requests in the run, 200 needed" in junit.read_text()


def test_compare_prints_a_human_table_like_the_gate(synthetic_pair, capsys) -> None:
    base, cur = synthetic_pair
    assert main(["compare", str(base), str(cur), "--config", str(PROJECT_CONFIG)]) == 0
    out = capsys.readouterr().out
    assert not RAW.search(out), RAW.search(out)
    assert "ci_low" not in out and "enough" not in out
    config_settings = parse_config({"settings": {"warmup_s": 2.0}}).settings
    changes = compare_runs(load_run(base), load_run(cur), config_settings)
    row = changes.set_index(["name", "metric"]).loc[("GET /api/2", "p95")]
    line = next(x for x in out.splitlines() if x.startswith("| `GET /api/2` | p95 |"))
    # The slowed endpoint: percent change and CI as the gate writes them, values in ms.
    assert f"| {100 * row['change']:+.1f}% |" in line
    assert f"[{100 * row['ci_low']:+.1f}%, {100 * row['ci_high']:+.1f}%]" in line
    assert f"| {row['current']:.1f} ms |" in line
    err = next(x for x in out.splitlines() if x.startswith("| `ALL` | error_rate |"))
    assert re.search(r"\| \d+\.\d\d% \| \d+\.\d\d% \| [+-]\d+\.\d\dpp \|", err), err


def test_history_prints_iso_dates(tmp_path: Path, capsys) -> None:
    runs = tmp_path / "runs"
    for i in range(4):
        req = synthetic_requests(2000, names=2, duration_s=20, seed=i, t0=1_700_000_000.0 + i)
        write_run(runs / f"run{i}", req)
    assert main(["history", "--runs", str(runs)]) == 0
    out = capsys.readouterr().out
    assert "2023-11-14T22:13:20Z" in out and "2023-11-14T22:13:23Z" in out
    assert not RAW.search(out), RAW.search(out)


def test_report_shows_rates_in_percent_like_their_threshold(tmp_path: Path) -> None:
    req = synthetic_requests(4000, names=2, duration_s=30, seed=3, error_rate=0.05)
    run_dir = write_run(tmp_path / "run", req)
    rate = float((~req["ok"]).mean())
    config = tmp_path / "gate.toml"
    config.write_text('[absolute]\noverall = ["error_rate < 1%"]\n')
    out = tmp_path / "r.html"
    assert main(["report", str(run_dir), "--config", str(config), "--out", str(out)]) == 0
    text = out.read_text()
    row = re.search(r"<td>ALL: error_rate &lt; 1%</td>\s*<td>([^<]*)</td>", text)
    assert row is not None and row.group(1) == f"{100 * rate:.2f}%"
    assert f"{rate:.4g}" not in text  # the bare fraction 0.05xx is gone
    assert not RAW.search(re.sub(r"data:image/png;base64,[^']*", "", text))

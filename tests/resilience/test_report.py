"""The HTML report of an experiment run says the verdict the CLI printed, with its phases,
recoveries and data audit (and no whole-run gate that contradicts it)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from analysis.cli import main as analysis_main
from analysis.synthetic import synthetic_requests, write_run
from experiments.audit_result import AuditResult, Finding
from experiments.experiment import Hypothesis, Tolerance
from experiments.verdict import Window, evaluate
from experiments.written_values import parse_bound
from testbed.target import Target
from tests.resilience.test_runs import experiment_file

from .conftest import run_experiment


def test_the_html_report_of_an_experiment_shows_the_verdict_the_cli_printed(
    target: Target, tmp_path: Path, journal_dir: Path
) -> None:
    # Redis down for 7 s: most requests fail inside the window, so the whole run is far
    # beyond config/gate.toml's "error_rate < 1%" while the experiment may well pass.
    path = experiment_file(tmp_path, link="redis", toxic="down")
    run_dir = tmp_path / "run"
    done = run_experiment(path, target, run_dir, "--report", timeout=240)
    assert done.returncode in (0, 1), done.stderr
    [cli_word] = re.findall(r"^verdict: (PASS|FAIL);", done.stdout, re.MULTILINE)
    assert done.returncode == (0 if cli_word == "PASS" else 1)

    html = (run_dir / "report.html").read_text()
    words = re.findall(r"Experiment verdict: <span class='\w+'>(PASS|FAIL)</span>", html)
    assert words == [cli_word]
    assert "Gate:" not in html  # the whole-run gate would judge the outage itself
    report = json.loads((run_dir / "verdict.json").read_text())
    for phase in report["verdict"]["phases"]:
        assert f"<td>{phase['label']}</td>" in html
    assert [p["phase"] for p in report["verdict"]["phases"]][:2] == ["before", "during"]
    assert "<h2>Recovery</h2>" in html and "<h2>Data audit</h2>" in html
    [recovery] = report["verdict"]["recoveries"]
    if recovery["seconds"] is not None:
        assert f"{recovery['seconds']:.1f} s" in html
    lost = report["audit"]["counts"]["lost"]
    assert re.search(rf"<td>lost writes</td>\s*<td>{lost}</td>", html)


def test_a_failed_experiment_reports_fail_with_what_failed(tmp_path: Path) -> None:
    """A run folder with a verdict that fails: the report says FAIL, names the failed
    check, the recovery that never came and the lost write, and leaves the gate out."""
    requests = synthetic_requests(3000, names=2, duration_s=60, seed=3, error_rate=0.0)
    t0 = float(requests["t_start"].min())
    fault = Window(t0 + 20, t0 + 30, "postgres", "latency latency=300 on postgres")
    strict = Tolerance(error_rate=parse_bound("< 1%", "error_rate"))
    slow = Tolerance(p95_ms=parse_bound("< 0.001", "p95_ms"))  # no request is that fast
    hypothesis = Hypothesis(strict, slow, slow, recovers_within=5.0, sustained=3.0)
    verdict = evaluate(requests, [fault], hypothesis, t0, t0 + 60, warmup=2.0)
    audit = AuditResult(lost=[Finding(7, "acknowledged but not in PostgreSQL")])
    report = {
        "experiment": "synthetic",
        "title": "a hypothesis no run meets",
        "load_start": t0,
        "verdict": verdict.to_json(),
        "audit": audit.to_json(),
        "ok": False,
    }
    run_dir = write_run(tmp_path / "run", requests, faults=[fault.__dict__])
    (run_dir / "verdict.json").write_text(json.dumps(report))
    assert analysis_main(["report", str(run_dir)]) == 0
    html = (run_dir / "report.html").read_text()
    assert "Experiment verdict: <span class='fail'>FAIL</span>" in html
    assert "Gate:" not in html
    assert "<td>during #1: latency latency=300 on postgres</td>" in html
    assert "<td>20.0-30.0 s</td>" in html  # the fault's window, seconds since the start
    assert "p95_ms &lt; 0.001" in html and "FAILED" in html
    assert "<td>never</td>" in html  # recovery to p95 < 0.001 ms never comes
    assert re.search(r"<td>lost writes</td>\s*<td>1</td>\s*<td>0</td>", html)
    assert "VOD 7: acknowledged but not in PostgreSQL" in html


def test_an_unreadable_verdict_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    run_dir = write_run(tmp_path / "run", synthetic_requests(500, names=2, duration_s=10))
    (run_dir / "verdict.json").write_text("{not json")
    assert analysis_main(["report", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {run_dir / 'verdict.json'}: not valid JSON")
    assert len(err.strip().splitlines()) == 1

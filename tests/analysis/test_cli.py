"""The command line: exit codes, one-line errors, outputs that other tools can read."""

from __future__ import annotations

import re
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pytest
from junitparser import JUnitXml

from analysis.cli import main
from analysis.synthetic import synthetic_requests, write_run

from .conftest import PROJECT_CONFIG, run_cli


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.seen: Counter[str] = Counter()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen[tag] += 1


def test_help_lists_every_subcommand() -> None:
    out = run_cli("--help")
    assert out.returncode == 0
    for cmd in ("summary", "baseline", "compare", "gate", "report", "history"):
        assert cmd in out.stdout


def test_missing_run_dir_is_one_line_exit_2(tmp_path: Path) -> None:
    out = run_cli("summary", str(tmp_path / "nope"))
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0
    assert "run folder does not exist" in out.stderr and "Traceback" not in out.stderr


def test_corrupt_parquet_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "requests-1.parquet").write_bytes(b"not parquet at all")
    out = run_cli("summary", str(tmp_path))
    assert out.returncode == 2
    assert "requests-1.parquet: not a readable Parquet file" in out.stderr
    assert "Traceback" not in out.stderr


def test_empty_run_folder(tmp_path: Path) -> None:
    assert main(["summary", str(tmp_path)]) == 2


def test_unknown_baseline_exit_2(synthetic_pair, tmp_path: Path, capsys) -> None:
    _, cur = synthetic_pair
    code = main(
        [
            "gate",
            str(cur),
            "--baseline",
            "nosuch",
            "--root",
            str(tmp_path / "b"),
            "--config",
            str(PROJECT_CONFIG),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "no baseline named 'nosuch'" in err and "baseline save" in err


def test_bad_baseline_name_rejected(synthetic_pair, tmp_path: Path, capsys) -> None:
    base, _ = synthetic_pair
    assert main(["baseline", "save", str(base), "--name", "../x", "--root", str(tmp_path)]) == 2
    assert "no slashes" in capsys.readouterr().err


def test_gate_fails_on_slow_endpoint_and_writes_outputs(
    synthetic_pair, tmp_path: Path, gate_config: Path
) -> None:
    base, cur = synthetic_pair
    root = tmp_path / "baselines"
    assert (
        main(
            [
                "baseline",
                "save",
                str(base),
                "--name",
                "main",
                "--root",
                str(root),
                "--config",
                str(PROJECT_CONFIG),
            ]
        )
        == 0
    )
    assert {p.name for p in (root / "main").iterdir()} == {
        "samples.parquet",
        "counts.parquet",
        "baseline.json",
    }
    step = tmp_path / "step.md"
    junit, report = tmp_path / "gate.xml", tmp_path / "gate.html"
    out = run_cli(
        "gate",
        str(cur),
        "--baseline",
        "main",
        "--root",
        str(root),
        "--junit",
        str(junit),
        "--report",
        str(report),
        "--config",
        str(gate_config),
        env={"GITHUB_STEP_SUMMARY": str(step)},
    )
    assert out.returncode == 1, out.stderr
    assert "Performance gate failed" in out.stdout
    assert "GET /api/2: p95" in step.read_text()
    xml = JUnitXml.fromfile(str(junit))
    cases = [c for suite in xml for c in suite]
    failed = [c.name for c in cases if any(r._tag == "failure" for r in c.result)]
    # The slow endpoint fails; the overall p95 may fail with it, no other endpoint does.
    assert "GET /api/2: p95 +25%" in failed
    assert all(n.startswith(("GET /api/2", "ALL")) for n in failed)
    assert len(cases) > 10
    assert report.stat().st_size > 10_000


def test_gate_passes_against_itself(synthetic_pair, capsys, gate_config: Path) -> None:
    base, _ = synthetic_pair
    assert main(["gate", str(base), "--baseline", str(base), "--config", str(gate_config)]) == 0
    assert "Performance gate passed" in capsys.readouterr().out


def test_report_is_self_contained_html(synthetic_pair, tmp_path: Path, gate_config: Path) -> None:
    base, cur = synthetic_pair
    out = tmp_path / "r.html"
    assert (
        main(
            [
                "report",
                str(cur),
                "--baseline",
                str(base),
                "--out",
                str(out),
                "--config",
                str(gate_config),
            ]
        )
        == 0
    )
    text = out.read_text()
    assert text.startswith("<!doctype html>")
    images = re.findall(r"<img alt='([^']+)' src='data:image/png;base64,", text)
    assert {
        "Latency over time",
        "Throughput and errors",
        "Service vs corrected latency",
        "Baseline vs current",
        "p95 change per endpoint",
    } <= set(images)
    assert not re.search(r"(src|href)=['\"](https?:|//)", text)
    assert "postgres" in text  # the fault window is listed
    tags = _Tags()
    tags.feed(text)
    assert tags.seen["img"] == len(images) and tags.seen["table"] >= 2


def test_compare_prints_every_metric(synthetic_pair, capsys) -> None:
    base, cur = synthetic_pair
    assert main(["compare", str(base), str(cur), "--config", str(PROJECT_CONFIG)]) == 0
    out = capsys.readouterr().out
    assert "throughput" in out and "error_rate" in out and "p99" in out


def test_history_finds_the_step(tmp_path: Path, capsys) -> None:
    runs = tmp_path / "runs"
    for i in range(8):
        slow = {"GET /api/0": 3.0, "GET /api/1": 3.0, "GET /api/2": 3.0} if i >= 4 else None
        req = synthetic_requests(
            3000, names=3, duration_s=20, seed=i, slow=slow, t0=1_700_000_000.0 + 100 * i
        )
        write_run(runs / f"run{i}", req)
    chart = tmp_path / "trend.png"
    assert main(["history", "--runs", str(runs), "--chart", str(chart)]) == 0
    out = capsys.readouterr().out
    assert "change points in p95: run4" in out
    assert chart.stat().st_size > 1000


@pytest.mark.parametrize("args", [["gate"], ["bogus"], ["history", "--metric", "nope"]])
def test_usage_errors_exit_2(args: list[str]) -> None:
    out = run_cli(*args)
    assert out.returncode == 2 and "usage:" in out.stderr


def test_report_lists_skipped_tasks_and_bytes_per_link(synthetic_pair, tmp_path: Path) -> None:
    """What the workload's plug-ins recorded in meta.json is in the report, not left out."""
    import json
    import shutil

    run = tmp_path / "run"
    shutil.copytree(synthetic_pair[1], run)
    meta_path = run / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    meta["coverage"] = {
        "problems": ["user class OpenModelReader sent no request (1 users, 8 task runs)"],
        "skipped": ["VodEditor.browse: skipped 3 of 3 runs: needs route 'list_vods'"],
        "notes": ["route sync_status not exercised: no task of this workload uses it"],
    }
    meta["links"] = {"postgres": {"upstream": 1200, "downstream": 5400}, "cablecast": {}}
    meta_path.write_text(json.dumps(meta))
    out = tmp_path / "r.html"
    assert main(["report", str(run), "--out", str(out), "--config", str(PROJECT_CONFIG)]) == 0
    text = out.read_text()
    assert "PROBLEM: user class OpenModelReader sent no request" in text
    assert (
        "skipped: VodEditor.browse: skipped 3 of 3 runs: needs route &#x27;list_vods&#x27;" in text
    )
    assert "note: route sync_status not exercised" in text
    assert "Bytes per link" in text and "5400" in text

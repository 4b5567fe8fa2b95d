"""`gate --start-stack` and `baseline record`: the gate's own load on a stack it starts for
the configured app, its own baseline and thresholds per app, and refusals in one line.

The reference-stack runs are real (a stack, ~12 s of load); the real Archivist's run is
skipped without ARCHIVIST_SRC.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from junitparser import Failure, JUnitXml

from analysis.cli import main
from analysis.synthetic import synthetic_requests, write_run
from tests.conftest import archivist_src, run_module

from .conftest import without_absolute_checks

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config" / "gate.toml"
_AGAINST = re.compile(r"against (https?://127\.0\.0\.1:\d+)")


def short_config(tmp_path: Path, seconds: float = 12.0) -> Path:
    """The project's gate config with a shorter load: the same checks, a test's budget."""
    text, n = re.subn(r"duration_s = \d+\.0", f"duration_s = {seconds}", CONFIG.read_text())
    assert n == 2  # [run] and [apps.archivist-flask]'s run
    path = tmp_path / "gate.toml"
    path.write_text(text)
    return path


def gate(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m analysis gate ARGS`; a stack start plus its load fits in 600 s."""
    return run_module("analysis", "gate", *args, timeout=600, env=os.environ | (env or {}))


def answers(url: str) -> bool:
    """Whether the API still answers (any status); workload.target has the same probe,
    but importing it here would load Locust and gevent's monkey-patching into pytest."""
    try:
        with urllib.request.urlopen(url + "/api/health", timeout=2):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--start-stack", "somerun"], "--start-stack records its own run"),
        (["--app", "archivist-flask", "somerun"], "--app goes with --start-stack"),
        (["--against", "main", "--start-stack"], "--against REF takes no RUN"),
    ],
)
def test_misplaced_stack_flags_are_usage_errors(args: list[str], message: str) -> None:
    out = gate(*args)
    assert out.returncode == 2 and message in out.stderr, out.stderr


def test_an_unknown_app_or_a_missing_checkout_is_one_line_before_anything_starts(
    tmp_path: Path,
) -> None:
    no_src = {k: v for k, v in os.environ.items() if k != "ARCHIVIST_SRC"}
    out = run_module("analysis", "gate", "--start-stack", "--app", "nosuch", timeout=60, env=no_src)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "nosuch" in out.stderr and "archivist-flask" in out.stderr  # the known apps
    out = run_module(
        "analysis", "gate", "--start-stack", "--app", "archivist-flask", timeout=60, env=no_src
    )
    assert out.returncode == 2
    assert "app archivist-flask needs its checkout: --app-src PATH" in out.stderr
    out = gate("--start-stack", "--app", "archivist-flask", "--app-src", str(tmp_path / "no"))
    assert out.returncode == 2 and str(tmp_path / "no") in out.stderr


def test_a_run_is_not_gated_against_a_baseline_of_another_target(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    requests = synthetic_requests(2_000, names=3, duration_s=30, seed=1)
    contract = write_run(tmp_path / "contract", requests, meta={"options": {"routes": "contract"}})
    flask = write_run(tmp_path / "flask", requests, meta={"options": {"routes": "archivist-flask"}})
    root = tmp_path / "baselines"
    assert main(["baseline", "save", str(contract), "--name", "ref", "--root", str(root)]) == 0
    saved = json.loads((root / "ref" / "baseline.json").read_text())
    assert saved["meta"]["routes"] == "contract"
    capsys.readouterr()
    assert main(["gate", str(flask), "--baseline", "ref", "--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert "recorded with routes 'contract'" in err and "'archivist-flask'" in err
    config = tmp_path / "gate.toml"
    config.write_text('[relative]\noverall = ["p95 +20%"]\n')
    same = ["--baseline", "ref", "--root", str(root), "--config", str(config)]
    assert main(["gate", str(contract), *same]) == 0


def test_gate_start_stack_loads_a_stack_it_starts_and_stops_then_gates_the_run(
    tmp_path: Path,
) -> None:
    """The start-stack path end to end, judged only by what holds on any machine.

    Whether a 12 s load on this machine passes against the stored `main` baseline (90 s,
    recorded elsewhere) depends on the machine's speed, so the verdict itself is only
    required to be a verdict that agrees with its JUnit file; the gate's logic is then shown
    on figures that cannot move: the run it recorded, gated against itself, passes every
    check it can judge (a change of exactly zero); test_compare and test_cli fail regressions
    on runs whose figures they control.
    """
    run_dir = tmp_path / "run"
    config = short_config(tmp_path)
    out = gate(
        "--start-stack",
        "--config", str(config),
        "--run-dir", str(run_dir),
        "--junit", str(run_dir / "gate.xml"),
    )  # fmt: skip
    assert out.returncode in (0, 1), out.stdout[-3000:] + out.stderr[-3000:]
    assert "starting the stack (reference)" in out.stdout
    assert "routes contract, 30 users for 12 s (seed 1)" in out.stdout
    word = "passed" if out.returncode == 0 else "failed"
    assert f"Performance gate {word}** against baseline `main`" in out.stdout, out.stdout
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["options"]["routes"] == "contract" and meta["seed"] == "1"
    failed = [c for suite in JUnitXml.fromfile(str(run_dir / "gate.xml")) for c in suite
              if any(isinstance(r, Failure) for r in c.result)]  # fmt: skip
    assert (len(failed) > 0) == (out.returncode == 1), out.stdout
    api = _AGAINST.search(out.stdout)
    assert api is not None and not answers(api.group(1))  # the stack it started is gone

    root = tmp_path / "baselines"
    saved = run_module("analysis", "baseline", "save", str(run_dir), "--name", "self",
                       "--root", str(root), timeout=120)  # fmt: skip
    assert saved.returncode == 0, saved.stderr
    relative_only = tmp_path / "relative.toml"  # and minimums a 12 s run meets
    text = without_absolute_checks(config.read_text())
    for key, low in (("min_samples", 5), ("min_blocks", 5), ("min_tail", 2)):
        text = re.sub(rf"(?m)^{key} = \d+", f"{key} = {low}", text, count=1)
    relative_only.write_text(text)
    again = gate(str(run_dir), "--baseline", "self", "--root", str(root),
                 "--config", str(relative_only))  # fmt: skip
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    tally = re.search(r"(\d+) checks: (\d+) passed, (\d+) failed", again.stdout)
    assert tally is not None and int(tally[2]) > 0 and tally[3] == "0", again.stdout


def test_ctrl_c_during_the_gate_load_stops_the_stack_and_exits_130(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "analysis", "gate", "--start-stack",
            "--config", str(short_config(tmp_path, 120.0)), "--run-dir", str(tmp_path / "run"),
        ],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        api = None
        deadline = time.monotonic() + 240
        while api is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, f"the gate ended before its load started: {proc.stderr.read()}"  # type: ignore[union-attr]
            api = _AGAINST.search(line)
        assert api is not None
        time.sleep(3)  # Locust is running
        assert answers(api.group(1))
        os.killpg(proc.pid, signal.SIGINT)
        code = proc.wait(120)
        assert code == 130, proc.stderr.read()  # type: ignore[union-attr]
        assert not answers(api.group(1))
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)


@pytest.mark.slow
@pytest.mark.hosts_real_app
@pytest.mark.timeout(900)
def test_the_real_archivist_is_gated_with_its_own_workload_baseline_and_checks(
    tmp_path: Path,
) -> None:
    """The committed archivist-flask baseline was recorded by `make baseline APP=...`."""
    src = archivist_src()
    run_dir = tmp_path / "run"
    out = gate(
        "--start-stack",
        "--app", "archivist-flask",
        "--config", str(short_config(tmp_path, 45.0)),
        "--run-dir", str(run_dir),
        env={"ARCHIVIST_SRC": str(src)},
    )  # fmt: skip
    assert out.returncode in (0, 1), out.stdout[-3000:] + out.stderr[-3000:]
    assert "routes archivist-flask, 20 users" in out.stdout
    assert "(checks of [apps.archivist-flask])" in out.stdout
    assert "against baseline `archivist-flask`" in out.stdout
    assert "GET /api/vods" not in out.stdout  # the reference's named checks are not applied
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["options"]["routes"] == "archivist-flask"
    assert meta["options"]["source_addresses"] == 20
    assert "POST /api/upload" in out.stdout and "GET /api/cablecast/shows" in out.stdout
    assert out.returncode == 0, out.stdout[-4000:]

"""The real Archivist (ARCHIVIST_SRC; skipped without it) under the experiments written for
it, run end to end as a user runs them (`python -m experiments run NAME`): each verdict must
reflect its fault, not PASS by accident nor say FAULT HIT NOTHING.

- Redis down: the app answers HTML 500s on every route (its rate limiter needs Redis):
  the verdict FAILs on other_errors during the fault and names that defect of the app.
- PostgreSQL 200 ms slower: its database routes get slower during the window: the
  verdict FAILs the during phase's relative p95 and its link carried bytes meanwhile.
- PostgreSQL down: uploads and VOD creations answer JSON 500s, and the health check
  keeps answering 200: the verdict FAILs and names both defects.
- An experiment that names no app, run with a stack TOML (--stack-config) whose `app` and
  `app_src` are the real app: the stack hosts it and the run uses its routes.

Both hold only one stack hosting the app at a time (its Redis proxy is 127.0.0.1:6379).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from experiments.runner import read_requests
from tests.conftest import archivist_src

REPO = Path(__file__).resolve().parents[2]
# a stack start plus ~2 min of load; the app's Redis proxy needs 127.0.0.1:6379
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600), pytest.mark.hosts_real_app]


def run(name: str, run_dir: Path) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    env = dict(os.environ, ARCHIVIST_SRC=str(archivist_src()))
    done = subprocess.run(
        [sys.executable, "-m", "faults", "run", name, "--run-dir", str(run_dir)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    verdict_file = run_dir / "verdict.json"
    assert verdict_file.exists(), done.stderr[-3000:]
    return done, json.loads(verdict_file.read_text())


def phase(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(p for p in report["verdict"]["phases"] if p["phase"] == name)


def failed_checks(p: dict[str, Any]) -> set[str]:
    return {c["metric"] for c in p["checks"] if not c["ok"]}


def test_redis_down_fails_on_the_apps_html_500s_and_names_the_defect(tmp_path: Path) -> None:
    done, report = run("archivist-redis-down", tmp_path / "run")
    assert done.returncode == 1, done.stderr[-3000:]
    assert report["verdict"]["word"] == "FAIL" and not report["verdict"]["hit_nothing"]
    assert report["routes"] == "archivist-flask"
    during = phase(report, "during")
    assert "other_errors" in failed_checks(during)
    assert during["stats"]["other_errors"] > 0.5  # most answers under the fault are 500s
    defects = during["defects"]
    assert [d["link"] for d in defects] == ["redis"], defects
    assert "Flask-Limiter" in defects[0]["why"] and defects[0]["answers"] > 10
    assert "APP DEFECT under this fault" in done.stdout
    assert report["audit"] is not None and report["audit"]["ok"]  # nothing acknowledged lost
    assert all(total > 0 for total in _link_totals(report).values())


def test_postgres_latency_shows_in_the_database_routes_p95(tmp_path: Path) -> None:
    done, report = run("archivist-postgres-latency", tmp_path / "run")
    assert not report["verdict"]["hit_nothing"]
    window = report["windows"][0]
    assert window["link"] == "postgres" and window["bytes"] > 0  # the toxic had traffic
    before, during = phase(report, "before"), phase(report, "during")
    assert during["stats"]["p95_ms"] > before["stats"]["p95_ms"], (before, during)
    assert during["defects"] == []  # nothing the profile lists for a slow database
    # the verdict says so: the relative p95 bound of the during phase failed
    assert "p95_ms" in failed_checks(during), during["checks"]
    assert report["verdict"]["word"] == "FAIL" and done.returncode == 1
    assert "p95 ms of the routes upload, get_file, create_vod, process_vod only" in done.stdout


def test_postgres_down_names_the_500s_and_the_health_check_that_stays_green(
    tmp_path: Path,
) -> None:
    done, report = run("archivist-postgres-down", tmp_path / "run")
    assert done.returncode == 1 and report["verdict"]["word"] == "FAIL", done.stderr[-3000:]
    during = phase(report, "during")
    assert "other_errors" in failed_checks(during)
    named = {d["routes"][0]: d for d in during["defects"]}
    assert named["GET /api/health"]["answers"] >= 1, during["defects"]
    assert "still answers 200" in named["GET /api/health"]["why"]
    writes = [d for d in during["defects"] if "POST /api/vod/create" in d["routes"]]
    assert writes and writes[0]["answers"] >= 1
    # every failure the fault caused is one the profile names as the app's
    assert sum(d["answers"] for d in writes) == during["stats"]["errors"]


def _link_totals(report: dict[str, Any]) -> dict[str, int]:
    return {link: sum(d.values()) for link, d in (report["links"] or {}).items()}


# No [stack], no routes: which app, and so which workload, is the stack TOML's to say.
SHORT = """
title = "the app config/stack.toml hosts"
[load]
locustfile = "locustfiles/vod.py"
users = 2
spawn_rate = 2
duration = "40s"
warmup = "15s"
[[faults]]
link = "redis"
toxic = "latency"
attributes = { latency = 20 }
at = "20s"
for = "5s"
[hypothesis]
error_rate = "< 50%"
p95_ms = "< 10000"
recovers_within = "5s"
sustained = "5s"
"""


def test_the_app_of_the_stack_toml_is_hosted_when_nothing_else_names_one(tmp_path: Path) -> None:
    src = archivist_src()
    text = (REPO / "config/stack.toml").read_text()
    config = tmp_path / "stack.toml"
    config.write_text(
        re.sub(r"(?m)^app = .*$", f'app = "archivist-flask"\napp_src = "{src}"', text, count=1)
    )
    experiment = tmp_path / "short.toml"
    experiment.write_text(SHORT)
    run_dir = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k != "ARCHIVIST_SRC"}  # the TOML's checkout
    done = subprocess.run(
        [sys.executable, "-m", "faults", "run", str(experiment), "--stack-config", str(config),
         "--run-dir", str(run_dir), "--no-audit"],
        cwd=REPO, capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert (run_dir / "verdict.json").exists(), done.stderr[-3000:]
    assert f"hosting archivist-flask from {src.resolve()}" in done.stderr
    report = json.loads((run_dir / "verdict.json").read_text())
    assert report["routes"] == "archivist-flask"
    assert json.loads((run_dir / "meta.json").read_text())["options"]["routes"] == "archivist-flask"
    requests = read_requests(run_dir)
    answered = requests[requests["ok"]]["name"].value_counts()
    for name in ("/api/upload", "/api/csrf-token", "/api/vod/create"):  # the real app's routes
        assert answered.get(name, 0) > 0, f"no {name} answered as expected"

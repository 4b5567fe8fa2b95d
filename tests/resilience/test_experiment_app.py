"""Experiments against a real app hosted by the stack: chosen in the file ([stack]) or on
the command line (--app, --app-src, $ARCHIVIST_SRC), with that app's route profile, its
Locust flags, and its outage defects as data. Bad choices get one line and exit code 2."""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import subprocess
import textwrap
from pathlib import Path

import pytest

from experiments.errors import ExperimentError
from experiments.experiment_file import load_experiment
from experiments.locust_process import locust_command
from experiments.runner import outage_defects
from testbed.hosted.spec import known_apps
from testbed.target import Target
from tests.conftest import without_archivist_src
from workload.routes import Profile
from workload.tomlconfig import ConfigError

from .conftest import run_experiments as cli

REPO = Path(__file__).resolve().parents[2]
BODY = """
[load]
locustfile = "locustfiles/vod.py"
users = 2
duration = "60s"
[[faults]]
link = "redis"
toxic = "down"
at = "20s"
for = "10s"
[hypothesis]
error_rate = "< 5%"
recovers_within = "10s"
"""


def write(tmp_path: Path, head: str, body: str = BODY) -> Path:
    path = tmp_path / "exp.toml"
    path.write_text(textwrap.dedent(head) + textwrap.dedent(body))
    return path


def cli_here(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`python -m experiments ARGS` in this process, for the refusals made before anything
    starts: a new interpreter per case cost seconds each on a loaded box. `env` is the
    whole environment for the call; it and the signal handlers main() sets are put back."""
    from experiments.cli import main

    saved_env, handlers = (
        dict(os.environ),
        {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)},
    )
    out, err = io.StringIO(), io.StringIO()
    os.environ.clear()
    os.environ.update(env)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exc:  # argparse's usage errors
                code = exc.code if isinstance(exc.code, int) else 2
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


no_src_env = without_archivist_src


def test_an_experiment_for_a_hosted_app_uses_that_apps_route_profile(tmp_path: Path) -> None:
    exp = load_experiment(write(tmp_path, '[stack]\napp = "archivist-flask"\n'))
    assert exp.stack.app == "archivist-flask" and exp.load.routes == "archivist-flask"
    plain = load_experiment(write(tmp_path, ""))
    assert plain.stack.app is None and plain.load.routes == "contract"


def test_an_unknown_app_or_p95_route_is_refused_by_field(tmp_path: Path) -> None:
    with pytest.raises(ExperimentError, match=r"stack.app 'nope' is not an app; known: .*"):
        load_experiment(write(tmp_path, '[stack]\napp = "nope"\n'))
    body = BODY.replace('error_rate = "< 5%"', 'p95_routes = ["browse", "brwose"]')
    with pytest.raises(ExperimentError, match=r"hypothesis.p95_routes brwose: not a route"):
        load_experiment(write(tmp_path, '[stack]\napp = "archivist-flask"\n', body))


def test_the_hosted_apps_locust_flags_come_under_the_experiments_own(tmp_path: Path) -> None:
    exp = load_experiment(write(tmp_path, '[stack]\napp = "archivist-flask"\n'))
    target = Target("https://api", "http://faults", load_options={"source-addresses": 20})
    command = locust_command(exp, target, tmp_path)
    assert command[command.index("--source-addresses") + 1] == "20"
    assert command[command.index("--routes") + 1] == "archivist-flask"
    own = BODY.replace('duration = "60s"', 'duration = "60s"\noptions = { "source-addresses" = 3 }')
    exp = load_experiment(write(tmp_path, '[stack]\napp = "archivist-flask"\n', own))
    command = locust_command(exp, target, tmp_path)
    assert command.count("--source-addresses") == 1
    assert command[command.index("--source-addresses") + 1] == "3"


def test_the_flask_profile_names_its_outage_defects_by_request_name() -> None:
    profile = Profile.load("archivist-flask")
    defects = {(d.link, d.routes[0]): d for d in outage_defects(profile)}
    redis = defects["redis", ("GET", "/api/browse")]  # routes = ["*"]: every route
    assert len(redis.routes) == len(profile.routes) and redis.status == (500,)
    health = defects["postgres", ("GET", "/api/health")]
    assert health.routes == (("GET", "/api/health"),) and health.status == (200,)
    assert health.ok_status == (200,)  # a 200 is health's expected answer: a success matches
    writes = defects["postgres", ("POST", "/api/upload")]
    assert writes.routes == (("POST", "/api/upload"), ("POST", "/api/vod/create"))


def test_a_defect_during_an_unknown_route_is_refused(tmp_path: Path) -> None:
    text = (REPO / "config/routes/archivist-flask.toml").read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace('routes = ["health"]', 'routes = ["helth"]'))
    with pytest.raises(ConfigError, match=r"defects_during\[1\].routes: unknown route\(s\) helth"):
        Profile.load(str(bad))


def test_bad_app_choices_exit_2_with_one_line() -> None:
    env = no_src_env()
    cases = [
        (("archivist-redis-down",), "needs its checkout: --app-src PATH or ARCHIVIST_SRC=PATH"),
        (("postgres-latency", "--app-src", "/tmp"), "--app-src needs --app NAME"),
        (("postgres-latency", "--app", "nope"), "--app 'nope': unknown app; known: reference"),
        (
            ("postgres-latency", "--app", "archivist-flask", "--app-src", "/nonexistent/src"),
            "checkout /nonexistent/src is not a folder",
        ),
        (
            ("postgres-latency", "--host", "http://127.0.0.1:9", "--app", "archivist-flask"),
            "--host and --app archivist-flask: give one target",
        ),
    ]
    for args, message in cases:
        done = cli_here("run", *args, env=env)
        assert done.returncode == 2, (args, done.stderr)
        assert message in done.stderr and "Traceback" not in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def stack_toml(tmp_path: Path, app_lines: str) -> Path:
    """config/stack.toml with its `app` line replaced (the tracked file is never edited)."""
    text = (REPO / "config/stack.toml").read_text()
    path = tmp_path / "stack.toml"
    path.write_text(re.sub(r"(?m)^app = .*$", app_lines, text, count=1))
    assert app_lines in path.read_text()
    return path


def test_an_app_the_stack_toml_names_is_checked_before_anything_starts(tmp_path: Path) -> None:
    """Neither --app nor [stack] names an app: --stack-config's app and app_src count."""
    env = no_src_env()
    not_a_folder = tmp_path / "archivist.tar"
    not_a_folder.write_text("")
    cases = [
        (
            f'app = "archivist-flask"\napp_src = "{not_a_folder}"',
            f"{not_a_folder}: not a directory",
        ),
        ('app = "archivist-flask"', "app = 'archivist-flask' needs app_src"),
        ('app = "nosuch"', f"app 'nosuch': unknown app; known: {', '.join(known_apps(REPO))}"),
    ]
    for app_lines, message in cases:
        config = stack_toml(tmp_path, app_lines)
        done = cli_here("run", "redis-down", "--stack-config", str(config), env=env)
        assert done.returncode == 2, (app_lines, done.stderr)
        assert done.stderr.startswith(f"error: {config}: ") and message in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    missing = cli_here("run", "redis-down", "--stack-config", str(tmp_path / "nope.toml"), env=env)
    assert missing.returncode == 2
    assert missing.stderr.strip() == f"error: --stack-config {tmp_path / 'nope.toml'}: no such file"
    # The experiment's [stack] names the app: the stack TOML's app is not consulted.
    config = stack_toml(tmp_path, 'app = "nosuch"')
    exp = write(tmp_path, '[stack]\napp = "archivist-flask"\n')
    done = cli_here("run", str(exp), "--stack-config", str(config), env=env)
    assert done.returncode == 2 and "needs its checkout: --app-src PATH" in done.stderr
    external = cli_here(
        "run", "redis-down", "--host", "http://127.0.0.1:9", "--stack-config", str(config), env=env
    )
    assert external.returncode == 2
    assert "--host and --stack-config: give one target" in external.stderr


def test_the_catalogue_run_leaves_out_experiments_for_a_hosted_app() -> None:
    done = cli("resilience", "--only", "archivist-*", "--budget", "1s", env=no_src_env())
    assert "not run here (they host a real app" in done.stderr
    assert "archivist-redis-down" in done.stderr
    assert done.returncode == 2 and "no experiment" in done.stderr


def test_a_relative_p95_is_only_for_the_during_and_after_phases(tmp_path: Path) -> None:
    during = BODY + '[hypothesis.during]\np95_ms = "< 150%"\n'
    exp = load_experiment(write(tmp_path, "", during))
    bound = exp.hypothesis.during.p95_ms
    assert bound is not None and bound.relative and bound.limit == 1.5
    top = BODY.replace('error_rate = "< 5%"', 'p95_ms = "< 150%"')
    with pytest.raises(ExperimentError, match=r"hypothesis.p95_ms a percentage is of the before"):
        load_experiment(write(tmp_path, "", top))
    before = BODY + '[hypothesis.before]\np95_ms = "< 150%"\n'
    with pytest.raises(ExperimentError, match=r"hypothesis.before.p95_ms cannot be relative"):
        load_experiment(write(tmp_path, "", before))

"""Experiment files: the catalogue loads, and every mistake is reported with file and field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from experiments.errors import ExperimentError
from experiments.experiment import REPO_ROOT
from experiments.experiment_file import load_experiment
from experiments.written_values import parse_bound, parse_duration
from faults.toxic_types import TOXICS

LINKS = ("postgres", "redis", "cablecast")
VALID = """
title = "t"
[load]
locustfile = "locustfiles/vod.py"
users = 5
duration = "60s"
[[faults]]
link = "postgres"
toxic = "latency"
attributes = { latency = 300 }
at = "20s"
for = "20s"
[hypothesis]
error_rate = "< 1%"
p95_ms = "< 800"
recovers_within = "10s"
[hypothesis.during]
error_rate = "< 50%"
"""


def write(tmp_path: Path, text: str, name: str = "db.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(ExperimentError) as info:
        load_experiment(write(tmp_path, text), LINKS)
    return str(info.value)


def test_the_catalogue_covers_every_toxic_and_down_on_every_link() -> None:
    files = sorted((REPO_ROOT / "config" / "experiments").glob("*.toml"))
    experiments = [load_experiment(f) for f in files]
    singles = {(e.faults[0].link, e.faults[0].toxic) for e in experiments if len(e.faults) == 1}
    assert singles >= {(link, toxic) for link in LINKS for toxic in TOXICS}
    compound = [e for e in experiments if len({f.link for f in e.faults}) > 1]
    assert len(compound) >= 3
    for e in experiments:
        if e.name != "demo" and e.stack.app is None:  # a real app's: not in that run
            assert e.load.duration <= 75, f"{e.name} is longer than the catalogue's budget"


def test_a_valid_file_loads_with_defaults_and_phase_overrides(tmp_path: Path) -> None:
    exp = load_experiment(write(tmp_path, VALID), LINKS)
    assert exp.load.duration == 60 and exp.load.warmup == 5
    assert exp.faults[0].at == 20 and exp.faults[0].end == 40
    assert exp.hypothesis.before.error_rate is not None
    assert exp.hypothesis.before.error_rate.limit == pytest.approx(0.01)
    assert exp.hypothesis.during.error_rate is not None
    assert exp.hypothesis.during.error_rate.limit == pytest.approx(0.5)
    assert exp.hypothesis.during.p95_ms == exp.hypothesis.before.p95_ms  # inherited
    assert exp.audit.lost_writes == 0
    assert exp.faults[0].describe() == "latency latency=300 on postgres"


def test_a_misspelled_link_names_the_file_field_and_known_links(tmp_path: Path) -> None:
    message = error_of(tmp_path, VALID.replace('link = "postgres"', 'link = "postgress"'))
    path = tmp_path / "db.toml"
    assert message == (
        f'{path}: faults[0].link "postgress" is not a proxy; known: postgres, redis, cablecast'
    )


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('toxic = "latency"', 'toxic = "lag"', 'faults[0].toxic "lag" is not a toxic'),
        (
            "latency = 300",
            "delay = 300",
            "faults[0].attributes.delay is not an attribute of latency",
        ),
        (
            "latency = 300",
            "latency = -1",
            "faults[0].attributes.latency is -1; it must be from 0 to",
        ),
        ("latency = 300", "latency = inf", "faults[0].attributes.latency must be a whole number"),
        ('at = "20s"', 'at = "20 secs"', 'faults[0].at "20 secs" is not a duration'),
        ('for = "20s"', 'for = "50s"', "faults[0].for the fault ends at 70s"),
        ('error_rate = "< 1%"', 'error_rate = "less than 1"', "hypothesis.error_rate"),
        ('p95_ms = "< 800"', 'p95_ms = "< 80%"', "hypothesis.p95_ms"),
        ("users = 5", 'users = "five"', "load.users must be an integer"),
        ('title = "t"', 'title = "t"\nrollback = 1', "rollback is not a known field"),
        (
            'locustfile = "locustfiles/vod.py"',
            'locustfile = "nope.py"',
            'load.locustfile "nope.py"',
        ),
        ('at = "20s"', 'at = "2s"', "faults[0].at 2s starts inside the warm-up"),
        # a fault that does nothing, or one the fault server would refuse (as in the panel)
        (
            'toxic = "latency"\nattributes = { latency = 300 }',
            'toxic = "bandwidth"',
            "faults[0].attributes bandwidth needs rate (KB/s) above 0",
        ),
        ("latency = 300", "latency = 0", "faults[0].attributes latency needs latency (ms)"),
        (
            "latency = 300 }",
            "latency = 300 }\ntoxicity = 0",
            "faults[0].toxicity is 0: the toxic would never apply",
        ),
        (
            "latency = 300",
            "latency = 2.5",
            "faults[0].attributes.latency must be a whole number of ms, got 2.5",
        ),
        (
            "users = 5",
            'users = 5\nroutes = "archivist-flsk"',
            "load.routes no such profile; known: archivist-flask, contract",
        ),
        ("users = 5", 'users = 5\nworkers = "two"', "load.workers must be a whole number"),
        (
            "users = 5",
            "users = 5\nworkers = 2\nexpect_workers = 2",
            "load.expect_workers and workers exclude each other",
        ),
        (
            "users = 5",
            'users = 5\nexpect_workers = 2\nmaster_bind_host = "my-host"',
            'load.master_bind_host must be an IP address (or "*": all)',
        ),
        ("users = 5", "users = 5\nmaster_bind_port = 70000", "load.master_bind_port must be"),
    ],
)
def test_mistakes_are_reported_with_the_field(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    assert old in VALID
    message = error_of(tmp_path, VALID.replace(old, new))
    assert message.startswith(f"{tmp_path / 'db.toml'}: ")
    assert expected in message


def test_bad_toml_and_missing_files_are_reported(tmp_path: Path) -> None:
    assert "not valid TOML" in error_of(tmp_path, "title = ")
    with pytest.raises(ExperimentError, match="cannot read"):
        load_experiment(tmp_path / "missing.toml", LINKS)


def test_durations_and_bounds_parse() -> None:
    assert parse_duration("60s") == 60
    assert parse_duration("3m") == 180
    assert parse_duration("1m30s") == 90
    assert parse_duration("500ms") == 0.5
    assert parse_duration(12) == 12
    for bad in ("", "3 minutes", "-1s", True):
        with pytest.raises(ValueError):
            parse_duration(bad)
    assert parse_bound("< 1%", "error_rate").holds(0.009)
    assert not parse_bound("< 1%", "error_rate").holds(0.01)
    assert parse_bound("<= 800", "p95_ms").holds(800)
    relative = parse_bound("> 50%", "throughput")
    assert relative.relative and relative.holds(6, baseline=10) and not relative.holds(4, 10)
    assert parse_bound("> 5", "throughput").holds(6)
    with pytest.raises(ValueError):
        parse_bound("< 2", "error_rate")  # a fraction above 1


def test_a_fault_may_carry_its_own_during_tolerance(tmp_path: Path) -> None:
    text = VALID.replace('for = "20s"', 'for = "20s"\nduring = { p95_ms = "< 300" }')
    exp = load_experiment(write(tmp_path, text), LINKS)
    own = exp.faults[0].during
    assert own is not None and own.p95_ms is not None and own.p95_ms.limit == 300
    assert own.error_rate == exp.hypothesis.during.error_rate  # the rest inherited
    bad = VALID.replace('for = "20s"', 'for = "20s"\nduring = { p99 = "< 300" }')
    assert "faults[0].during.p99 is not a known field" in error_of(tmp_path, bad)


def test_the_load_table_becomes_locust_flags(tmp_path: Path) -> None:
    from experiments.locust_process import locust_command
    from testbed.target import Target

    text = VALID.replace(
        "users = 5",
        'users = 5\narrival_rate = 2.5\nshape = "ramp"\ntags = ["db"]\n'
        'options = { "stop-timeout" = 10, "reset-stats" = true }',
    )
    exp = load_experiment(write(tmp_path, text), LINKS)
    command = locust_command(exp, Target("http://api", "http://faults", "http://cc"), tmp_path)
    flags = " ".join(command[3:])
    assert "-f locustfiles/vod.py --headless --host http://api --users 5" in flags
    assert f"--run-time 60s --run-dir {tmp_path}" in flags
    for part in (
        "--arrival-rate 2.5",
        "--shape ramp",
        "--tags db",
        "--cablecast-url http://cc",
        "--stop-timeout 10",
        "--reset-stats",
    ):
        assert part in flags
    assert flags.count("--stop-timeout") == 1


def test_the_route_profile_is_part_of_the_experiment(tmp_path: Path) -> None:
    default = load_experiment(write(tmp_path, VALID), LINKS)
    assert default.load.routes == "contract"
    flask = VALID.replace("users = 5", 'users = 5\nroutes = "archivist-flask"')
    assert load_experiment(write(tmp_path, flask), LINKS).load.routes == "archivist-flask"

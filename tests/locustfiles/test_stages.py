"""Load-shape stages from config: the arithmetic and the errors (no Locust imported)."""

from __future__ import annotations

from pathlib import Path

import pytest

from workload.stages import SHAPE_NAMES, SHAPES_TOML, Stage, stages_of
from workload.tomlconfig import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "shapes.toml"
    path.write_text(text)
    return path


def test_step_adds_users_every_step(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[step]\nstart_users = 2\nstep_users = 3\nstep_s = 10\nsteps = 3\nspawn_rate = 5\n",
    )
    assert stages_of("step", path) == [Stage(10, 2, 5), Stage(20, 5, 5), Stage(30, 8, 5)]


def test_ramp_goes_up_holds_and_comes_down(tmp_path: Path) -> None:
    path = write(tmp_path, "[ramp]\nusers = 20\nramp_s = 10\nhold_s = 30\ndown_s = 5\n")
    assert stages_of("ramp", path) == [Stage(10, 20, 2.0), Stage(40, 20, 2.0), Stage(45, 0, 4.0)]


def test_spike_returns_to_base(tmp_path: Path) -> None:
    text = "[spike]\nbase_users = 5\nspike_users = 40\nbefore_s = 10\nspike_s = 5\n"
    path = write(tmp_path, text + "after_s = 10\nspawn_rate = 40\n")
    stages = stages_of("spike", path)
    assert [s.users for s in stages] == [5, 40, 5] and stages[-1].until_s == 25


@pytest.mark.parametrize("name", [n for n in SHAPE_NAMES if n != "none"])
def test_every_shipped_shape_is_bounded(name: str) -> None:
    stages = stages_of(name, SHAPES_TOML)
    assert stages and all(s.until_s > 0 for s in stages)
    assert [s.until_s for s in stages] == sorted(s.until_s for s in stages)


def test_missing_parameter_names_file_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, "[soak]\nusers = 10\nspawn_rate = 1\n")
    with pytest.raises(ConfigError, match=r"shapes.toml: soak.duration_s = None"):
        stages_of("soak", path)


def test_zero_spawn_rate_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "[soak]\nusers = 10\nduration_s = 60\nspawn_rate = 0\n")
    with pytest.raises(ConfigError, match=r"spawn_rate = 0: expected a number > 0"):
        stages_of("soak", path)


def test_unknown_shape_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="ramp, step, spike, soak"):
        stages_of("sawtooth", SHAPES_TOML)

"""The app's command lines: clear usage, and a clear exit 2 on missing or bad settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from testbed.api.settings import AppConfig, ConfigError

ENV_NAMES = ("ARCHIVIST_DATABASE_URL", "ARCHIVIST_REDIS_URL", "ARCHIVIST_CABLECAST_URL")
GOOD_ENV = {
    "ARCHIVIST_DATABASE_URL": "postgresql://u@127.0.0.1:1/x",
    "ARCHIVIST_REDIS_URL": "redis://127.0.0.1:1/0",
    "ARCHIVIST_CABLECAST_URL": "http://127.0.0.1:1/CablecastAPI/v1",
}


def run(
    module: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIVIST_")}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        env=base | (env or {}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("module", ["testbed.api", "testbed.worker", "testbed.cablecast"])
def test_help_explains_usage(module: str) -> None:
    result = run(module, "--help")
    assert result.returncode == 0
    assert f"python -m {module}" in result.stdout


@pytest.mark.parametrize(
    ("module", "args"), [("testbed.api", ["--port", "0"]), ("testbed.worker", [])]
)
def test_missing_environment_exits_2_naming_the_variables(module: str, args: list[str]) -> None:
    result = run(module, *args)
    assert result.returncode == 2
    for name in ENV_NAMES:
        assert name in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_regression_and_bad_config_exit_2() -> None:
    bad = run("testbed.api", "--port", "0", env=GOOD_ENV | {"ARCHIVIST_REGRESSION": "slow"})
    assert bad.returncode == 2 and "slow-list" in bad.stderr
    missing = run("testbed.worker", env=GOOD_ENV | {"ARCHIVIST_CONFIG": "/nonexistent.toml"})
    assert missing.returncode == 2 and "/nonexistent.toml" in missing.stderr
    port = run("testbed.cablecast", "--port", "99999")
    assert port.returncode == 2 and "--port" in port.stderr


def test_config_errors_name_the_file_and_key(tmp_path: Path) -> None:
    text = (Path(AppConfig.load().source)).read_text()
    broken = tmp_path / "a.toml"
    broken.write_text(text.replace("pool_max_size = 10", 'pool_max_size = "ten"'))
    with pytest.raises(ConfigError, match=r"\[database\]\.pool_max_size must be int"):
        AppConfig.load(broken)
    broken.write_text(text.replace("pool_max_size = 10", "pool_max_size = 10\npool_maxsize = 3"))
    with pytest.raises(ConfigError, match="unknown keys"):
        AppConfig.load(broken)

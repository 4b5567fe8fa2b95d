"""The sign-in workflow against the real stack when logging in fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.locustfiles.conftest import REPO_ROOT, run_locust


def test_a_person_whose_login_failed_does_not_use_missing_tokens(
    stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Accounts the stack never seeded: every login is refused, as during a Redis outage,
    # and no seeded account is locked out for the rest of the session.
    config = (REPO_ROOT / "config" / "archivist.toml").read_text()
    ghosts = config.replace('name_pattern = "user{n:03d}"', 'name_pattern = "ghost{n:03d}"')
    assert ghosts != config, "config/archivist.toml no longer names its users user{n:03d}"
    (tmp_path / "archivist.toml").write_text(ghosts)
    monkeypatch.setenv("ARCHIVIST_CONFIG", str(tmp_path / "archivist.toml"))
    args = ["-f", "locustfiles/auth.py", "SessionUser", "--headless", "-u", "3", "-r", "3"]
    run = run_locust([*args, "-t", "6s", "--host", stack.api_url], tmp_path / "run", 60)
    counts = run.counts()
    logins, failed = counts[("POST", "/api/auth/login")]
    assert logins >= 6 and failed == logins, counts
    used = {key: n for key, n in counts.items() if key[1] != "/api/auth/login"}
    assert not used, f"requests made without a session: {used}"

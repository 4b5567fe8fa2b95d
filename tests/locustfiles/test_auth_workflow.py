"""The sign-in workflow against the real stack when logging in fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.locustfiles.conftest import REPO_ROOT
from tests.locustfiles.test_workloads import Counts, run_locust_until

LOGIN = ("POST", "/api/auth/login")


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

    # About 6 s; on a busy machine until each person has tried to log in twice on average
    # (at start, then in a task): people who carry on after a failed login.
    def tried_again(counts: Counts) -> bool:
        return counts.get(LOGIN, (0, 0))[0] >= 6

    run = run_locust_until(
        [*args, "--host", stack.api_url], tmp_path / "run", tried_again, at_least_s=6
    )
    counts = run.counts()
    logins, failed = counts[LOGIN]
    assert logins >= 6 and failed == logins, counts
    used = {key: n for key, n in counts.items() if key[1] != "/api/auth/login"}
    assert not used, f"requests made without a session: {used}"

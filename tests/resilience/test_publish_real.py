"""Publishing against the real Archivist (ARCHIVIST_SRC), from the fixtures the stack seeds.

The stack inserts completed transcriptions through the app's own tables, with their SCC
files on its private NAS; the workload publishes those ids (--fixtures), so each publish
reaches the app's Cablecast integration, and the audit checks every publication, the
refused ones for half-writes. Skipped without ARCHIVIST_SRC.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from experiments.audit import audit_for_profile
from experiments.audit_result import AuditResult, Sources
from experiments.experiment import Audit
from testbed.stack import Stack
from tests.locustfiles.conftest import run_locust
from workload.fixtures import read_fixtures
from workload.routes import Profile
from workload.run_lines import ledger_entries

pytestmark = [pytest.mark.slow, pytest.mark.hosts_real_app]
PROFILE = Profile.load("archivist-flask")
PUBLISH = "POST /api/vod/publish/{id}"


def publish_and_audit(stack: Stack, run_dir: Path) -> tuple[list[dict[str, Any]], AuditResult]:
    """20 s of the Flask workload publishing the stack's fixtures, then the profile's
    audit of the run: the publications the ledger holds, and the audit's result."""
    assert stack.fixtures_path is not None, "the stack seeded no fixtures for the real app"
    seeded = read_fixtures(stack.fixtures_path)["transcriptions"]
    run = run_locust(
        ["-f", "locustfiles/vod.py", "--routes", "archivist-flask", "--headless",
         "-u", "2", "-r", "2", "-t", "20s", "--stop-timeout", "15",
         "--host", stack.api_url, "--cablecast-url", stack.cablecast_url,
         "--fixtures", str(stack.fixtures_path),
         "--source-addresses", "2", "--exit-code-on-error", "0"],
        run_dir, timeout=240,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    entries = ledger_entries(run.run_dir, kinds=("ack", "refused"))
    published = [e for e in entries if e.get("request") == PUBLISH]
    assert published, "no publication reached the ledger"
    assert all(e["values"]["{id}"] in seeded for e in published), "a publish of an unseeded id"
    sources = Sources(stack.database_url, stack.redis_url, stack.cablecast_url)
    result = audit_for_profile(run.run_dir, sources, Audit(), PROFILE)
    assert result is not None
    checked = result.checked["publications acknowledged"] + result.checked["publications refused"]
    assert checked == len(published)
    return published, result


@pytest.mark.timeout(900)
def test_publish_reaches_the_real_app_with_seeded_ids_and_each_is_audited(
    archivist_stack: Stack, tmp_path: Path
) -> None:
    stack = archivist_stack
    assert stack.fixtures_path is not None, "the stack seeded no fixtures for the real app"
    seeded = read_fixtures(stack.fixtures_path)["transcriptions"]
    with psycopg.connect(stack.database_url) as conn:
        (rows,) = conn.execute(
            "SELECT count(*) FROM transcription_results WHERE id = ANY(%s) AND status = %s",
            (list(seeded), "completed"),
        ).fetchone() or (0,)
    assert rows == len(seeded) > 0
    nas = stack.state_dir / "archivist-flask" / "mnt" / "nas" / "transcriptions"
    assert len(list(nas.glob("archivist-fixture-*.scc"))) == len(seeded)

    _, result = publish_and_audit(stack, tmp_path / "run")
    assert result.ok, result.to_json()
    if result.checked["publications refused"]:  # why the app refuses, in its own log
        log = (stack.log_dir / "api.log").read_text(errors="replace")
        assert "Failed to publish content" in log, log[-3000:]

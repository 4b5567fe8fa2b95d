"""The real Archivist's answers held to its data (ARCHIVIST_SRC): its transcription list
answers [] while its table holds rows, and its VOD entries are acknowledged, never stored."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import psycopg
import pytest

from analysis.findings import to_text
from analysis.findings_run import run_findings
from analysis.wrong_answers import NEVER_STORED, WRONG_ANSWER
from experiments.answer_truth import take
from experiments.audit_result import Sources
from testbed.stack import Stack
from tests.locustfiles.conftest import run_locust
from workload.answer_rules import load_answer_checks, profile_file

ROWS = 12


def insert_transcriptions(database_url: str, n: int) -> None:
    """Completed transcriptions in the app's own table (a test's fixture, not the stack's)."""
    with psycopg.connect(database_url) as conn:
        for i in range(n):
            conn.execute(
                "INSERT INTO transcription_results (id, video_path, output_path, status, "
                "completed_at) VALUES (%s, %s, %s, 'completed', now())",
                (str(uuid.uuid4()), f"/mnt/flex-1/meeting-{i}.mp4", f"/mnt/flex-1/meeting-{i}.scc"),
            )


@pytest.mark.slow
@pytest.mark.hosts_real_app
@pytest.mark.timeout(600)
def test_the_empty_transcription_list_and_the_unstored_vod_entries_are_findings(
    archivist_stack: Stack, tmp_path: Path
) -> None:
    stack = archivist_stack
    insert_transcriptions(stack.database_url, ROWS)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    checks = load_answer_checks(profile_file("archivist-flask"))
    sources = Sources(stack.database_url, stack.redis_url, stack.cablecast_url)
    take(run_dir, "before", checks, sources)
    run = run_locust(
        ["-f", "locustfiles/vod.py", "--routes", "archivist-flask", "--headless",
         "-u", "2", "-r", "2", "-t", "15s", "--stop-timeout", "15",
         "--host", stack.api_url, "--cablecast-url", stack.cablecast_url,
         "--source-addresses", "2", "--exit-code-on-error", "0"],
        run_dir, timeout=240,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    take(run_dir, "after", checks, sources)
    table = run_findings(run_dir).table
    print(to_text(table))
    [wrong] = table[
        (table["kind"] == WRONG_ANSWER) & (table["endpoint"] == "GET /api/transcriptions")
    ].itertuples(index=False)
    held = re.fullmatch(r"\[\] while the database held (\d+) transcriptions when the run started",
                        wrong.detail)  # fmt: skip
    assert held and int(held.group(1)) >= ROWS, wrong.detail
    assert wrong.count == wrong.requests > 0
    [lost] = table[
        (table["kind"] == NEVER_STORED) & (table["endpoint"] == "POST /api/vod/create")
    ].itertuples(index=False)
    assert lost.count > 0 and "e.g. vod_id '" in lost.detail
    # Cablecast through the app names only shows and VODs the simulator holds.
    assert not table["endpoint"].isin(["GET /api/cablecast/shows", "GET /api/cablecast/vods"]).any()

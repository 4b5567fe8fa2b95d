"""Answers held to the data on the reference stack, in both directions: a VOD read that
disagrees with its row (a defect seeded in a copy of the API, outside the repo) is a
``wrong answer``; the API as it is gives none."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from analysis.findings import to_text
from analysis.findings_run import run_findings
from analysis.wrong_answers import WRONG_ANSWER
from experiments.answer_truth import take
from experiments.audit_result import Sources
from faults.embedded import free_port
from testbed.stack import Stack
from tests.conftest import REPO_ROOT, process_group, wait_until_healthy
from tests.locustfiles.conftest import run_locust
from workload.answer_rules import load_answer_checks, profile_file, read_observations

READER = """
from locust import constant, task
from workload.users import ArchivistUser


class Reader(ArchivistUser):
    wait_time = constant(0.05)

    def on_start(self) -> None:
        super().on_start()
        self.mine = []

    @task
    def write_then_read(self) -> None:
        if len(self.mine) < 5:
            reply = self.api.create_vod(
                title=f"answers {len(self.mine)}", file_name="council.mp4"
            )
            if reply.ok:
                self.mine.append(reply.get("id"))
        for vod_id in self.mine:
            self.api.get_vod(vod_id)
"""
CORRECT = 'return JSONResponse(vod, headers={"X-Cache": "miss"})'
SEEDED = 'return JSONResponse({**vod, "title": vod["title"][::-1]}, headers={"X-Cache": "miss"})'
CACHED = 'return JSONResponse(cached, headers={"X-Cache": "hit"})'
CACHED_SEEDED = (
    'return JSONResponse({**cached, "title": cached["title"][::-1]}, headers={"X-Cache": "hit"})'
)


@contextmanager
def seeded_api(stack: Stack, copy: Path) -> Iterator[str]:
    """A second API of the stack, run from a copy of testbed/ whose VOD read answers the
    title reversed (same database, Redis and Cablecast); its URL once healthy."""
    for part in ("testbed", "config", "faults", "workload"):
        shutil.copytree(REPO_ROOT / part, copy / part, ignore=shutil.ignore_patterns("__pycache__"))
    vods = copy / "testbed" / "api" / "routes" / "vods.py"
    text = vods.read_text()
    assert CORRECT in text and CACHED in text, "the seed no longer matches testbed/api"
    vods.write_text(text.replace(CORRECT, SEEDED).replace(CACHED, CACHED_SEEDED))
    port = free_port(stack.settings.host)
    url = f"http://{stack.settings.host}:{port}"
    argv = [sys.executable, "-m", "testbed.api", "--host", stack.settings.host, "--port", str(port)]
    log = copy / "api.log"
    with (
        log.open("ab") as out,
        process_group(
            argv, cwd=copy, env=stack.app_env, stdin=subprocess.DEVNULL,
            stdout=out, stderr=subprocess.STDOUT,
        ) as proc,
    ):  # fmt: skip

        def gone() -> str:
            return "" if proc.poll() is None else f"the API exited: {log.read_text()[-3000:]}"

        wait_until_healthy(url, stack.settings.timeouts["api"], gone)
        yield url


def read_for_a_while(api_url: str, run_dir: Path, stack: Stack) -> None:
    """8 s of two people creating VODs and reading them back, then what the rows hold."""
    options = ["--headless", "-u", "2", "-r", "2", "-t", "8s", "--stop-timeout", "5"]
    locustfile = run_dir.parent / "reader.py"
    result = run_locust(["-f", str(locustfile), *options, "--host", api_url], run_dir)
    assert result.returncode == 0, result.stderr[-2000:]
    checks = load_answer_checks(profile_file("contract"))
    take(run_dir, "after", checks, Sources(stack.database_url))


def test_a_vod_read_that_disagrees_with_its_row_is_a_wrong_answer_and_the_real_api_gives_none(
    clean_faults: Stack, tmp_path: Path
) -> None:
    stack = clean_faults
    (tmp_path / "reader.py").write_text(READER)
    read_for_a_while(stack.api_url, tmp_path / "normal", stack)
    seen = read_observations(tmp_path / "normal")
    assert len(seen) >= 10 and all(o["route"] == "get_vod" for o in seen)
    normal = run_findings(tmp_path / "normal").table
    assert normal.empty, normal.to_string()

    with seeded_api(stack, tmp_path / "copy") as url:
        read_for_a_while(url, tmp_path / "seeded", stack)
    table = run_findings(tmp_path / "seeded").table
    print(to_text(table))
    [row] = table[table["kind"] == WRONG_ANSWER].itertuples(index=False)
    assert row.endpoint == "GET /api/vods/[id]" and row.count == row.requests > 0
    assert row.detail.startswith("title '") and "while its vods row has 'answers " in row.detail

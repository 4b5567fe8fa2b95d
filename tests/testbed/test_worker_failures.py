"""When publishing cannot succeed, the VOD ends `failed` with a reason, and can be
processed again once the cause is gone."""

from __future__ import annotations

from pathlib import Path

from testbed.api.client import ArchivistClient
from testbed.api.settings import DEFAULT_CONFIG
from testbed.stack import Stack
from tests.conftest import retrying_503

from .test_worker_flow import assert_published_once


def config_with(tmp_path: Path, **replacements: str) -> Path:
    text = DEFAULT_CONFIG.read_text()
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / "archivist-test.toml"
    path.write_text(text)
    return path


def test_retries_running_out_mark_the_vod_failed_and_it_can_be_processed_again(
    clean_faults: Stack, tmp_path: Path
) -> None:
    stack = clean_faults
    few = config_with(tmp_path, **{"publish_attempts = 15": "publish_attempts = 2"})
    stack.restart("worker", env={"ARCHIVIST_CONFIG": str(few)})
    with ArchivistClient(stack.api_url, timeout=30) as api:
        retrying_503(api.login)  # set-up: a loaded box may 503 it
        vod = api.create_vod(title="fails while Cablecast is away")
        stack.faults.disable("cablecast")
        try:
            assert api.request("POST", f"/api/vods/{vod['id']}/process").status_code == 202
            failed = api.wait_for(vod["id"], {"failed", "published"}, timeout=30)
        finally:
            stack.faults.enable("cablecast")
        assert failed["status"] == "failed"
        assert "Cablecast" in failed["failure_reason"]
        assert failed["cablecast_vod_id"] is None

        again = api.request("POST", f"/api/vods/{vod['id']}/process")
        assert again.status_code == 202
        done = api.wait_for(vod["id"], {"failed", "published"}, timeout=30)
        assert done["status"] == "published" and done["failure_reason"] is None
        assert_published_once(stack, done)


def test_a_rejected_publish_fails_at_once_without_retrying(
    clean_faults: Stack, tmp_path: Path
) -> None:
    stack = clean_faults
    wrong = config_with(tmp_path, **{'password = "cablecast-secret"': 'password = "wrong"'})
    stack.restart("worker", env={"ARCHIVIST_CONFIG": str(wrong)})
    with ArchivistClient(stack.api_url, timeout=30) as api:
        retrying_503(api.login)  # set-up: a loaded box may 503 it
        vod = api.create_vod(title="rejected by Cablecast")
        assert api.request("POST", f"/api/vods/{vod['id']}/process").status_code == 202
        failed = api.wait_for(vod["id"], {"failed", "published"}, timeout=15)
    assert failed["status"] == "failed"
    assert "401" in failed["failure_reason"]

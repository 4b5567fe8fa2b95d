"""The CSRF flow of the real Archivist over plain HTTP (ARCHIVIST_SRC; skipped without it).

Behind a proxy that ends TLS, the app answers plain HTTP (told X-Forwarded-Proto: https)
and still marks its session cookie Secure, so a cookie jar never sends it back and every
write fails with "The CSRF session token is missing". The workload sends the cookie back
by hand: its writes are accepted. Without that (a profile with no session_cookie) they
are refused, which shows the cookie is what makes them pass.
"""

from __future__ import annotations

import glob
import re
from pathlib import Path

import pandas as pd
import pytest

from testbed.stack import StackSettings, running_stack, temporary_state_dir
from testbed.stack_settings import REPO_ROOT
from tests.conftest import archivist_src
from tests.locustfiles.conftest import run_locust

WRITES = ("/api/upload", "/api/vod/create", "/api/cablecast/vods/[id]/chapters")


def _variant(folder: Path, source: Path, edit: dict[str, str]) -> Path:
    """A copy of one of our TOML files with some text replaced (named as the original)."""
    text = source.read_text()
    for old, new in edit.items():
        assert old in text, f"{source} no longer has {old!r}"
        text = text.replace(old, new)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / source.name
    path.write_text(text)
    return path


def _writes(run_dir: Path) -> pd.DataFrame:
    frame = pd.concat(pd.read_parquet(p) for p in glob.glob(f"{run_dir}/requests-*.parquet"))
    frame["name"] = frame["name"].astype(str)
    return frame[frame["type"].astype(str) == "POST"]  # the writes


@pytest.mark.timeout(900)
@pytest.mark.hosts_real_app
def test_writes_over_http_need_the_secure_session_cookie_sent_by_hand(tmp_path: Path) -> None:
    src = archivist_src()
    app = _variant(
        tmp_path / "app",
        REPO_ROOT / "config" / "apps" / "archivist-flask.toml",
        {
            "tls = true": 'tls = false\nprobe_headers = { "X-Forwarded-Proto" = "https" }',
            '"--certfile", "{tls_cert}", "--keyfile", "{tls_key}", ': "",
        },
    )
    routes = REPO_ROOT / "config" / "routes" / "archivist-flask.toml"
    behind_proxy = "[errors]"
    by_hand = _variant(
        tmp_path / "by-hand",
        routes,
        {behind_proxy: '[headers]\nX-Forwarded-Proto = "https"\n\n[errors]'},
    )
    jar_only = _variant(
        tmp_path / "jar-only",
        routes,
        {
            behind_proxy: '[headers]\nX-Forwarded-Proto = "https"\n\n[errors]',
            'session_cookie = "session"': 'session_cookie = ""',
        },
    )
    with temporary_state_dir("testbed-archivist-http-") as state_dir:
        settings = StackSettings.from_config(
            free_ports=True, state_dir=state_dir, app=str(app), app_src=src
        )
        with running_stack(settings) as stack:
            assert stack.api_url.startswith("http://")
            runs = {}
            for name, profile in (("by-hand", by_hand), ("jar-only", jar_only)):
                run = run_locust(
                    ["-f", "locustfiles/vod.py", "--routes", str(profile), "--headless",
                     "-u", "2", "-r", "2", "-t", "12s", "--stop-timeout", "15",
                     "--host", stack.api_url, "--cablecast-url", stack.cablecast_url,
                     "--source-addresses", "2", "--exit-code-on-error", "0"],
                    tmp_path / f"run-{name}", timeout=240,
                )  # fmt: skip
                assert run.returncode == 0, run.stderr[-3000:]
                runs[name] = _writes(run.run_dir)
    accepted = runs["by-hand"][runs["by-hand"]["ok"]]["name"].value_counts()
    for write in WRITES:
        assert accepted.get(write, 0) > 0, f"{write}: no write accepted over HTTP"
    refused = runs["jar-only"][runs["jar-only"]["name"].isin(WRITES)]
    assert len(refused) > 0 and not refused["ok"].any()
    assert all(re.search(r"status 400", e) for e in refused["error"])

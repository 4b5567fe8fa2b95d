"""The real Archivist's workload (locustfiles/flask_archivist.py, --routes archivist-flask).

The profile itself is checked without a checkout; the workload runs against the real app
of ARCHIVIST_SRC hosted in the stack (skipped without it): every route of the profile is
exercised, nothing fails but the app's listed defects (and 429s, counted apart), the
CSRF flow's writes are accepted, users come from the loopback addresses they were given,
and all three dependency links carry the traffic.
"""

from __future__ import annotations

import glob
from pathlib import Path

import httpx
import pandas as pd
import pytest
import redis

from testbed.stack import Stack
from tests.locustfiles.conftest import run_locust
from workload.routes import Profile, users_for
from workload.tomlconfig import ConfigError

PROFILE = Profile.load("archivist-flask")


class _User:  # stands for ArchivistUser: these tests must not import Locust (gevent)
    for_profiles: tuple[str, ...] = ()


class VodEditor(_User):
    pass


class ArchivistFlaskOperator(_User):
    for_profiles = ("archivist-flask",)


class SomeShape:
    pass


def test_profile_spawns_its_own_users_and_the_contract_its_own() -> None:
    classes: list[type] = [VodEditor, ArchivistFlaskOperator, SomeShape]
    assert users_for(PROFILE, classes, _User) == [ArchivistFlaskOperator, SomeShape]
    assert users_for(Profile.load("contract"), classes, _User) == [VodEditor, SomeShape]


def test_profile_lists_expectations_and_defects_of_known_routes() -> None:
    assert PROFILE.session_cookie == "session" and PROFILE.referer
    assert PROFILE.error_shape == "flat"
    assert PROFILE.expected("create_vod") == (200,)
    assert PROFILE.expected("process_vod") == (200, 404)
    assert PROFILE.defects["sync_status"].status == (500,)


def test_defect_of_an_unknown_route_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "odd.toml"
    path.write_text(
        '[auth]\nmode = "none"\n[routes]\nhealth = "GET /h"\n'
        '[defects]\nnope = { status = [500], why = "x" }\n'
    )
    with pytest.raises(ConfigError, match="unknown route"):
        Profile.load(str(path))


def test_source_addresses_refuse_a_host_that_is_not_loopback(tmp_path: Path) -> None:
    run = run_locust(
        ["-f", "locustfiles/vod.py", "--headless", "-u", "1", "-t", "1s",
         "--host", "http://192.0.2.1:9", "--source-addresses", "2"],
        tmp_path / "run", timeout=60,
    )  # fmt: skip
    assert run.returncode != 0
    assert "--source-addresses needs a loopback --host" in run.stderr


# --- against the real app (ARCHIVIST_SRC) ------------------------------------------------


def _link_bytes(stack: Stack) -> dict[str, float]:
    totals: dict[str, float] = {}
    for line in httpx.get(f"{stack.fault_url}/metrics", timeout=10).text.splitlines():
        if line.startswith("toxiproxy_proxy_sent_bytes_total{"):
            proxy = line.split('proxy="', 1)[1].split('"', 1)[0]
            totals[proxy] = totals.get(proxy, 0.0) + float(line.rsplit(" ", 1)[1])
    return totals


@pytest.mark.timeout(900)
def test_workload_exercises_every_route_and_fails_only_on_known_defects(
    archivist_stack: Stack, tmp_path: Path
) -> None:
    stack = archivist_stack
    users = 4
    before = _link_bytes(stack)
    run = run_locust(
        ["-f", "locustfiles/vod.py", "--routes", "archivist-flask", "--headless",
         "-u", str(users), "-r", str(users), "-t", "25s", "--stop-timeout", "15",
         "--host", stack.api_url, "--cablecast-url", stack.cablecast_url,
         "--source-addresses", str(users), "--exit-code-on-error", "0"],
        tmp_path / "run", timeout=240,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    requests = pd.concat(pd.read_parquet(p) for p in glob.glob(f"{run.run_dir}/requests-*.parquet"))
    seen = set(requests["name"].astype(str))
    for key, route in PROFILE.routes.items():
        assert route.name in seen, f"route {key} ({route.method} {route.name}) never requested"
    kinds = requests["error"].dropna().str.split(":").str[0]
    unexplained = requests[requests["error"].notna() & ~kinds.isin(["KnownDefect", "RateLimited"])]
    assert len(unexplained) <= 0.01 * len(requests), unexplained["error"].value_counts()
    # Writes went through the CSRF flow: uploads and creates were accepted.
    posts = requests[requests["ok"] & (requests["type"].astype(str) == "POST")]
    ok = posts["name"].astype(str).value_counts()
    for name in ("/api/upload", "/api/vod/create", "/api/cablecast/vods/[id]/chapters"):
        assert ok.get(name, 0) > 0, f"no {name} accepted"
    # The app's known defects did show up, each as such.
    defective = requests.loc[kinds[kinds == "KnownDefect"].index.unique(), "name"]
    assert {"/api/[id]", "/api/vod/publish/[id]", "/api/vod/sync-status"} <= set(
        defective.astype(str)
    )
    # Each user came from its own address (127.0.0.2, .3, ...): the limiter counted them apart.
    direct = redis.Redis.from_url(stack.redis_url)
    keys = [k.decode() for k in direct.scan_iter(match="LIMITS*", count=1000)]
    for n in range(users):
        source = f"127.0.0.{2 + n}"
        assert any(f"/{source}/" in k for k in keys), f"no limiter key of {source}"
    after = _link_bytes(stack)
    for link in ("postgres", "redis", "cablecast"):
        assert after[link] > before[link], f"no bytes on the {link} link"

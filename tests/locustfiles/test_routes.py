"""Route/auth profiles: the contract by default, the Flask Archivist as a second profile."""

from __future__ import annotations

from pathlib import Path

import pytest

from workload.routes import MissingRoute, Profile
from workload.tomlconfig import ConfigError


def test_contract_profile_names_ids_as_placeholders() -> None:
    profile = Profile.load("contract")
    route = profile.route("get_vod")
    assert (route.method, route.path(42), route.name) == ("GET", "/api/vods/42", "/api/vods/[id]")
    assert profile.auth_mode == "bearer" and profile.health_ok_values == ("ok",)


def test_flask_profile_uses_csrf_and_lacks_login() -> None:
    profile = Profile.load("archivist-flask")
    assert profile.auth_mode == "csrf" and profile.csrf_header == "X-CSRF-Token"
    assert profile.route("process_vod").path(7) == "/api/vod/publish/7"
    assert not profile.has("login")
    with pytest.raises(MissingRoute, match="'login' is not in profile 'archivist-flask'"):
        profile.route("login")


def test_unknown_profile_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="known: archivist-flask, contract"):
        Profile.load("nginx")


def test_malformed_route_names_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "odd.toml"
    path.write_text('[auth]\nmode = "none"\n[routes]\nhealth = "GET /h"\nget_vod = "/api/vods"\n')
    with pytest.raises(ConfigError, match=r"odd.toml: routes.get_vod = \"/api/vods\""):
        Profile.load(str(path))


def test_bearer_profile_without_login_route_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "nologin.toml"
    path.write_text('[auth]\nmode = "bearer"\n[routes]\nhealth = "GET /api/health"\n')
    with pytest.raises(ConfigError, match="need route 'login'"):
        Profile.load(str(path))


def test_a_profile_says_what_durable_means_or_nothing(tmp_path: Path) -> None:
    flask = Profile.load("archivist-flask")
    assert flask.ledger_fields == {
        "upload": ("file_id",),
        "create_vod": ("vod_id",),  # not durable: its told id names the lost write
        "process_vod": ("vod_id", "{id}"),
    }
    assert Profile.load("contract").audit is not None
    bare = tmp_path / "bare.toml"
    bare.write_text('[auth]\nmode = "none"\n[routes]\nhealth = "GET /h"\n')
    assert Profile.load(str(bare)).audit is None


@pytest.mark.parametrize(
    ("audit", "expected"),
    [
        ('checks = "tabels"', "audit.checks 'tabels': expected 'contract' or 'tables'"),
        ('checks = "tables"', "audit.checks = 'tables' needs [[audit.durable]] rules"),
        (
            'checks = "tables"\n[[audit.durable]]\nrequest = "POST /x"\nfield = "id"\n'
            'table = "a; drop table b"\ncolumn = "id"',
            "audit.durable[0].table 'a; drop table b' is not a plain SQL name",
        ),
        (
            'checks = "tables"\n[[audit.durable]]\nrequest = "POST /x"\nfield = "id"',
            "audit.durable[0] lacks table, column",
        ),
    ],
)
def test_a_malformed_audit_names_file_and_field(tmp_path: Path, audit: str, expected: str) -> None:
    path = tmp_path / "p.toml"
    path.write_text(f'[auth]\nmode = "none"\n[routes]\nhealth = "GET /h"\n[audit]\n{audit}\n')
    with pytest.raises(ConfigError) as info:
        Profile.load(str(path))
    assert str(info.value) == f"{path}: {expected}"

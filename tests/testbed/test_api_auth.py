"""Auth routes of the contract against the running stack: tokens, refresh, logout, lock-out."""

from __future__ import annotations

import httpx
import redis

from testbed.api.client import ArchivistClient
from testbed.api.settings import AppConfig
from testbed.stack import Stack
from tests.conftest import retrying_503

CONFIG = AppConfig.load()


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["details"], list)
    return error


def test_login_gives_a_bearer_pair_that_me_accepts(stack: Stack) -> None:
    with ArchivistClient(stack.api_url) as api:
        body = retrying_503(api.login)
        assert body["token_type"] == "bearer"
        assert body["expires_in"] == CONFIG.auth.access_ttl_s
        me = api.request("GET", "/api/auth/me")
        assert me.status_code == 200
        assert me.json() == {"username": CONFIG.users.names()[0], "role": CONFIG.users.role}


def test_refresh_gives_a_new_pair_and_the_old_refresh_token_stops_working(stack: Stack) -> None:
    with ArchivistClient(stack.api_url) as api:
        old = retrying_503(api.login)
        fresh = api.http.post("/api/auth/refresh", json={"refresh_token": old["refresh_token"]})
        assert fresh.status_code == 200
        pair = fresh.json()
        assert pair["access_token"] != old["access_token"]
        again = api.http.post("/api/auth/refresh", json={"refresh_token": old["refresh_token"]})
        assert_error(again, 401, "unauthorized")
        me = api.http.get(
            "/api/auth/me", headers={"Authorization": f"Bearer {pair['access_token']}"}
        )
        assert me.status_code == 200


def test_logout_revokes_the_session(stack: Stack) -> None:
    with ArchivistClient(stack.api_url) as api:
        retrying_503(api.login)  # set-up: a loaded box may 503 it
        assert api.request("POST", "/api/auth/logout").status_code == 204
        assert_error(api.request("GET", "/api/auth/me"), 401, "unauthorized")
        assert_error(api.request("GET", "/api/vods"), 401, "unauthorized")


def test_missing_and_bad_tokens_are_401(stack: Stack) -> None:
    with httpx.Client(base_url=stack.api_url, timeout=10) as http:
        assert_error(http.get("/api/auth/me"), 401, "unauthorized")
        assert_error(http.get("/api/vods"), 401, "unauthorized")
        bad = {"Authorization": "Bearer not-a-token"}
        assert_error(http.get("/api/auth/me", headers=bad), 401, "unauthorized")
        basic = {"Authorization": "Basic dXNlcjpwYXNz"}
        assert_error(http.get("/api/vods/1", headers=basic), 401, "unauthorized")


def test_wrong_password_is_401_and_bad_login_bodies_are_400_or_422(stack: Stack) -> None:
    user = CONFIG.users.names()[1]
    with httpx.Client(base_url=stack.api_url, timeout=10) as http:
        wrong = http.post("/api/auth/login", json={"username": user, "password": "nope"})
        assert_error(wrong, 401, "unauthorized")
        error = assert_error(
            http.post("/api/auth/login", json={"username": user}), 422, "validation_error"
        )
        assert "password" in str(error["message"])
        assert_error(
            http.post("/api/auth/login", json={"username": 5, "password": "x"}),
            422,
            "validation_error",
        )
        assert_error(http.post("/api/auth/login", content=b"{nope"), 400, "bad_request")
        assert_error(http.post("/api/auth/login", json=["a"]), 400, "bad_request")
        # a successful login clears the failure count
        ok = http.post(
            "/api/auth/login", json={"username": user, "password": CONFIG.users.password}
        )
        assert ok.status_code == 200


def test_too_many_failed_logins_lock_the_user_out_even_with_the_right_password(
    stack: Stack,
) -> None:
    user = CONFIG.users.names()[-1]
    limit = CONFIG.auth.max_failed_logins
    direct = redis.Redis.from_url(stack.redis_url)
    try:
        with httpx.Client(base_url=stack.api_url, timeout=10) as http:
            for _ in range(limit):
                response = http.post("/api/auth/login", json={"username": user, "password": "x"})
                assert_error(response, 401, "unauthorized")
            right = {"username": user, "password": CONFIG.users.password}
            assert_error(http.post("/api/auth/login", json=right), 429, "rate_limited")
            # another user is not affected
            other = {"username": CONFIG.users.names()[2], "password": CONFIG.users.password}
            assert http.post("/api/auth/login", json=other).status_code == 200
            ttl = direct.ttl(f"archivist:failed-logins:{user}")
            assert 0 < ttl <= CONFIG.auth.lockout_window_s
    finally:
        direct.delete(f"archivist:failed-logins:{user}")
        direct.close()

"""People signing in and out: sessions, refresh, revocation, wrong passwords and lock-out.

Every answer is checked against the contract: a revoked, used-up or garbled token must
get 401, the lock-out must answer 429 after ``max_failed_logins`` failures. Lock-out and
wrong-password attempts use dedicated seeded users (config/workload.toml ``[users]``), so
they never lock out the people driving the VOD workflows.

Expired tokens: the contract offers no per-request short TTL (the TTL is the stack's
``auth.access_ttl_s``, 15 min by default), so expiry is simulated with tokens the server
never issued or that were garbled; the server cannot tell those from expired ones either
(its tokens are opaque keys in Redis).
"""

from __future__ import annotations

import secrets

from locust import between, tag, task

from workload.users import AUTH, ArchivistUser

from workload.settings import workload
from workload.shapes import SelectableShape  # noqa: F401  (Locust finds the shape here)
from workload.tally import uses

AUTH_CFG = workload().section("auth")
ACCOUNTS = workload().accounts


class SessionUser(ArchivistUser):
    """Someone who logs in, looks at their profile, refreshes, and logs out."""

    wait_time = between(AUTH_CFG["wait_min_s"], AUTH_CFG["wait_max_s"])
    weight = 4

    @tag(AUTH)
    @uses("login", "me", "logout")
    @task(4)
    def login_me_logout(self) -> None:
        pair = self.api.open_session(self.api.session.username)
        if pair.ok:
            self.api.as_bearer("me", pair.get("access_token"), check=self.is_me)
            self.api.as_bearer("logout", pair.get("access_token"), expect=(204,))

    @tag(AUTH)
    @uses("login", "refresh", "me")
    @task(2)
    def refresh_rotates(self) -> None:
        old = self.api.open_session(self.api.session.username)
        if not old.ok:  # not signed in (login failed): nothing to refresh
            return
        used = {"refresh_token": old.get("refresh_token")}
        new = self.api.send("refresh", json_body=used, authed=False)
        if new.ok:
            self.api.send(
                "refresh", json_body=used, authed=False, expect=(401,), code="unauthorized"
            )
            self.api.as_bearer("me", old.get("access_token"), expect=(401,))
            self.api.as_bearer("me", new.get("access_token"), check=self.is_me)

    @tag(AUTH)
    @uses("login", "logout", "me", "refresh")
    @task(2)
    def revoked_token(self) -> None:
        pair = self.api.open_session(self.api.session.username)
        if not pair.ok:  # not signed in: nothing to revoke
            return
        if self.api.as_bearer("logout", pair.get("access_token"), expect=(204,)).ok:
            self.api.as_bearer("me", pair.get("access_token"), expect=(401,))
            refresh = {"refresh_token": pair.get("refresh_token")}
            self.api.send(
                "refresh", json_body=refresh, authed=False, expect=(401,), code="unauthorized"
            )

    @tag(AUTH)
    @uses("login", "me")
    @task(1)
    def expired_or_forged_token(self) -> None:
        pair = self.api.open_session(self.api.session.username)
        if not pair.ok:  # without a real token there is nothing to garble
            return
        token = str(pair.get("access_token"))
        self.api.as_bearer("me", token[::-1] + "x", expect=(401,), name="me (garbled token)")
        self.api.as_bearer("me", secrets.token_urlsafe(32), expect=(401,), name="me (forged)")

    @tag(AUTH)
    @uses("login", "me", "logout")
    @task(1)
    def many_sessions(self) -> None:
        pairs = [self.api.open_session(self.api.session.username) for _ in range(self.sessions)]
        tokens = [str(p.get("access_token")) for p in pairs if p.ok]
        for token in tokens:
            self.api.as_bearer("me", token, check=self.is_me)
        if tokens and self.api.as_bearer("logout", tokens[0], expect=(204,)).ok:
            self.api.as_bearer("me", tokens[0], expect=(401,), name="me (after logout)")
            for token in tokens[1:]:
                self.api.as_bearer("me", token, name="me (other session)")
                self.api.as_bearer("logout", token, expect=(204,))

    @property
    def sessions(self) -> int:
        return int(AUTH_CFG["sessions_per_user"])

    def is_me(self, body: object) -> str:
        name = body.get("username") if isinstance(body, dict) else None
        return "" if name == self.api.session.username else f"me says {name!r}"


class WrongPassword(ArchivistUser):
    """Someone who mistypes their password, then gets it right (which clears the count)."""

    wait_time = between(AUTH_CFG["wait_min_s"], AUTH_CFG["wait_max_s"])
    weight = 1

    def on_start(self) -> None:
        self.username = self.rng.choice(ACCOUNTS.wrong_password)

    @tag(AUTH)
    @uses("login")
    @task
    def mistype_then_login(self) -> None:
        wrong = "not-" + ACCOUNTS.password
        self.api.open_session(self.username, wrong, expect=(401,), name="login (wrong password)")
        self.api.open_session(self.username)


class LockedOut(ArchivistUser):
    """Someone (or a script) guessing passwords until the lock-out stops them."""

    wait_time = between(AUTH_CFG["wait_min_s"], AUTH_CFG["wait_max_s"])
    weight = 1

    def on_start(self) -> None:
        self.username = self.rng.choice(ACCOUNTS.lockout)

    @tag(AUTH)
    @uses("login")
    @task
    def guess_until_locked(self) -> None:
        wrong = "guess-" + secrets.token_hex(4)
        for _ in range(ACCOUNTS.max_failed_logins):  # 401 until the limit (429 if already)
            self.api.open_session(self.username, wrong, expect=(401, 429), name="login (guess)")
        self.api.open_session(self.username, wrong, expect=(429,), name="login (locked out)")
        # Even the right password is refused while the lock-out lasts.
        self.api.open_session(self.username, expect=(429,), name="login (locked, right password)")

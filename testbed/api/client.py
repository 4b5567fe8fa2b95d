"""A small synchronous client of the Archivist API, for the testbed's tests and bench.

Not the Locust client (that is workload/client.py): this one is for checks that log in,
create a VOD and wait for a state, with every wait bounded.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx

from testbed.api.settings import AppConfig


class ArchivistClient:
    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=timeout)
        self.token: str | None = None
        self.refresh_token: str | None = None

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> ArchivistClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def login(self, username: str | None = None, password: str | None = None) -> dict[str, Any]:
        users = AppConfig.load().users
        response = self.http.post(
            "/api/auth/login",
            json={
                "username": username or users.names()[0],
                "password": password or users.password,
            },
        )
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        self.token, self.refresh_token = body["access_token"], body["refresh_token"]
        return body

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = self.headers | kw.pop("headers", {})
        return self.http.request(method, path, headers=headers, **kw)

    def create_vod(self, key: str | None = None, **fields: Any) -> dict[str, Any]:
        body = {"title": f"vod {uuid.uuid4().hex[:8]}", "file_name": "clip.mp4"} | fields
        headers = {"Idempotency-Key": key} if key else {}
        response = self.request("POST", "/api/vods", json=body, headers=headers)
        response.raise_for_status()
        vod: dict[str, Any] = response.json()
        return vod

    def get_vod(self, vod_id: int) -> dict[str, Any]:
        response = self.request("GET", f"/api/vods/{vod_id}")
        response.raise_for_status()
        vod: dict[str, Any] = response.json()
        return vod

    def wait_for(
        self, vod_id: int, statuses: set[str], timeout: float = 30.0, poll: float = 0.05
    ) -> dict[str, Any]:
        """Poll until the VOD is in one of `statuses`; raises TimeoutError with the last seen."""
        deadline = time.monotonic() + timeout
        last: dict[str, Any] = {}
        while time.monotonic() < deadline:
            response = self.request("GET", f"/api/vods/{vod_id}")
            if response.status_code == 200:
                last = response.json()
                if last["status"] in statuses:
                    return last
            time.sleep(poll)
        raise TimeoutError(f"VOD {vod_id} not in {sorted(statuses)} after {timeout}s: {last}")

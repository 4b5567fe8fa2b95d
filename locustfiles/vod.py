"""VOD operators at work: browse, search, open, create, edit, delete, and publish to Cablecast.

Run it with the web UI (``locust -f locustfiles/vod.py``) or headless (``--headless -u 20
-r 5 -t 2m``). Without ``--host`` it targets the local reference stack (config/stack.toml).
The end-to-end publication (create -> process -> poll -> published -> found in Cablecast)
is reported as its own entry, type ``WORKFLOW``, name ``upload->published``.

Each person edits and deletes only the VODs they created, so the ledger's last word on a
VOD is what the service last promised about it.
"""

from __future__ import annotations

import time
from typing import Any

from locust import between, tag, task
from locust.env import Environment

from workload.users import API, DB, EXTERNAL, SYSTEM, ArchivistUser

from locustfiles.flask_archivist import ArchivistFlaskOperator  # noqa: F401  (--routes archivist-flask)
from workload.fakes import fake_title, fake_vod
from workload.settings import workload
from workload.shapes import SelectableShape  # noqa: F401  (Locust finds the shape here)
from workload.tally import uses

VOD = workload().section("vod")
STATUSES = ("uploaded", "transcoding", "published", "failed")


class VodEditor(ArchivistUser):
    """An operator who keeps the archive: reads a lot, writes some, publishes now and then."""

    wait_time = between(VOD["wait_min_s"], VOD["wait_max_s"])
    weight = 4

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.mine: dict[int, int] = {}  # my VODs: id -> version the service last told me

    @tag(DB)
    @uses("list_vods")
    @task(4)
    def browse(self) -> None:
        status = self.rng.choice([None, *STATUSES])
        page = self.api.list_vods(limit=VOD["list_limit"], status=status)
        if cursor := page.get("next_cursor"):
            self.api.list_vods(limit=VOD["list_limit"], status=status, cursor=cursor)

    @tag(DB)
    @uses("list_vods")
    @task(2)
    def search(self) -> None:
        self.api.list_vods(limit=VOD["list_limit"], q=fake_title(self.rng).split()[0])

    @tag(API)
    @uses("get_vod")
    @task(6)
    def open_vod(self) -> None:
        if self.mine:
            self.api.get_vod(self.rng.choice(list(self.mine)))

    @tag(DB)
    @uses("create_vod")
    @task(2)
    def create(self) -> None:
        vod = self.api.create_vod(**fake_vod(self.rng))
        if vod.ok:
            self.remember(vod.body)

    @tag(DB)
    @uses("update_vod")
    @task(2)
    def edit(self) -> None:
        if self.mine:
            vod_id = self.rng.choice(list(self.mine))
            reply = self.api.update_vod(vod_id, self.mine[vod_id], title=fake_title(self.rng))
            if reply.ok:
                self.remember(reply.body)

    @tag(DB)
    @uses("delete_vod")
    @task(2)
    def delete(self) -> None:
        if self.mine:  # tidy up: the oldest of my VODs goes
            vod_id = min(self.mine)
            if self.api.delete_vod(vod_id).ok:
                del self.mine[vod_id]

    @tag(EXTERNAL)
    @uses("create_vod", "process_vod", "get_vod")
    @task(1)
    def publish(self) -> None:
        with self.workflow("upload->published"):
            vod = self.api.must(self.api.create_vod(**fake_vod(self.rng)), "id")
            self.api.must(self.api.process(vod["id"]))
            done = self.api.wait_until(
                vod["id"], "published", VOD["workflow_timeout_s"], VOD["poll_interval_s"]
            )
            self.api.verify_in_cablecast(done, self.cablecast_url)
            self.remember(done)

    @tag(EXTERNAL)
    @uses("list_shows")
    @task(1)
    def shows(self) -> None:
        self.api.send("list_shows", query={"q": fake_title(self.rng).split()[0]})

    @tag(SYSTEM)
    @uses("health")
    @task(1)
    def health(self) -> None:
        self.api.send("health", authed=False)

    def remember(self, vod: Any) -> None:
        """Note a VOD of mine (a deployment answering in another shape is simply not noted)."""
        if isinstance(vod, dict) and isinstance(vod.get("id"), int):
            self.mine[vod["id"]] = int(vod.get("version") or 1)


class OpenModelReader(ArchivistUser):
    """Readers arriving on a schedule (open model), not after the previous answer.

    Each reader draws Poisson arrivals at ``--arrival-rate`` requests/s and tags every
    request with the time it was DUE (``intended_start``), so a stalled service shows up as
    latency (corrected for coordinated omission) rather than as fewer requests.
    """

    weight = 1

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        rate = getattr(environment.parsed_options, "arrival_rate", 0.0) or 0.0
        self.rate = rate or float(workload().section("open_model")["rate_per_user"])
        self.due = time.time()

    def on_start(self) -> None:
        self.due = time.time()
        super().on_start()

    def wait_time(self) -> float:
        self.due += self.rng.expovariate(self.rate)
        return max(0.0, self.due - time.time())

    def context(self) -> dict[str, Any]:
        return {"intended_start": self.due}

    @tag(API)
    @uses("list_vods")
    @task
    def read_listing(self) -> None:
        self.api.list_vods(limit=VOD["list_limit"])

"""A station operator using the real Archivist (the public Flask code), route by route.

What its users do: get a CSRF token (the session cookie holds its secret), upload a
digital file (a council's PDF), create a VOD entry for it, browse the NAS and the
transcriptions, look at the queue, publish a transcription, check the sync status, and
work with Cablecast through the app: shows, VODs, chapters, locations. Every answer is
judged by config/routes/archivist-flask.toml: the statuses each route should answer, the
app's error shape, and its known defects (counted apart, as ``KnownDefect``). A 429 is
``RateLimited``: the app limits per client address, so spread users with
``--source-addresses N``.

    locust -f locustfiles/vod.py --routes archivist-flask --host https://127.0.0.1:8000 \\
        --headless -u 10 -r 5 -t 60s --source-addresses 10

At test start, an empty Cablecast *simulator* gets a few shows with a VOD each, as a
station has, so the Cablecast routes have something to show (a real Cablecast is never
written to: only a server whose /systeminfo says ``simulated``).
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import httpx
from locust import between, events, tag, task
from locust.env import Environment
from locust.runners import WorkerRunner
from urllib3.filepost import encode_multipart_formdata

from workload.users import API, DB, EXTERNAL, SYSTEM, ArchivistUser

from workload import target
from workload.client import cablecast_auth_headers
from workload.fakes import fake_title
from workload.fixtures_wiring import fixture_ids
from workload.judging import Reply
from workload.settings import profile_of, workload
from workload.tally import uses

PROFILE = "archivist-flask"
FLASK = workload().section("flask")
WEIGHTS: dict[str, int] = FLASK["weights"]  # per route key: sized for enough samples per phase
CITIES = ("Birchwood", "Lake Elmo", "Mahtomedi", "Oakdale", "White Bear Lake")


class ArchivistFlaskOperator(ArchivistUser):
    """A station operator at work in the real Archivist."""

    for_profiles = (PROFILE,)
    wait_time = between(FLASK["wait_min_s"], FLASK["wait_max_s"])

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.files: list[str] = []  # digital files I uploaded
        self.transcriptions: list[str] = []
        self.seeded: tuple[str, ...] = ()  # transcriptions the stack seeded
        self.shows: list[int] = []  # Cablecast ids seen through the app
        self.vods: list[int] = []

    def on_start(self) -> None:
        """Log in the Flask way (a CSRF token and its session cookie), then look around once:
        every page of the app, so even a short run exercises each route of the profile."""
        # What the stack seeded (--fixtures): the app's own list route does not show them.
        self.seeded = fixture_ids(self.environment, "transcriptions")
        self.api.fetch_csrf_token()
        self.upload()
        if getattr(self.environment.parsed_options, "no_look_round", False):
            return  # a paired gate's slice: steady work only
        for step in (
            self.cablecast_shows, self.cablecast_show, self.cablecast_vods, self.cablecast_vod,
            self.chapters, self.add_chapter, self.locations, self.browse,
            self.list_transcriptions, self.member_cities, self.queue, self.open_file,
            self.create_vod, self.publish, self.sync_status, self.health,
        ):  # fmt: skip
            step()

    def call(self, route_key: str, **kw: Any) -> Reply:
        """One request, expecting what the profile says this route answers."""
        return self.api.send(route_key, expect=self.api.profile.expected(route_key), **kw)

    # -- files and VODs (PostgreSQL) ---------------------------------------------------

    @tag(DB)
    @uses("upload")
    @task(WEIGHTS["upload"])
    def upload(self) -> None:
        city = self.rng.choice(CITIES)
        name = f"{city.lower().replace(' ', '-')}-minutes-{self.rng.randint(1, 99_999)}.pdf"
        body, content_type = encode_multipart_formdata(
            {
                "file": (name, b"%PDF-1.4\n% council minutes\n" * 8, "application/pdf"),
                "metadata": json.dumps({"city": city, "document_type": "Council Minutes"}),
            }
        )
        reply = self.call(
            "upload",
            raw=body,
            headers={"Content-Type": content_type},
            check=_needs("file_id"),
        )
        if reply.ok:
            self.files = [*self.files[-19:], str(reply.get("file_id"))]

    @tag(DB)
    @uses("get_file")
    @task(WEIGHTS["get_file"])
    def open_file(self) -> None:
        if self.files:
            self.call("get_file", vod_id=self.rng.choice(self.files))

    @tag(DB)
    @uses("create_vod")
    @task(WEIGHTS["create_vod"])
    def create_vod(self) -> None:
        if not self.files:
            return
        title = fake_title(self.rng)
        self.call(
            "create_vod",
            json_body={
                "file_id": self.rng.choice(self.files),
                "title": title,
                "description": f"Recording of the {title.lower()}",
                "category": "Government",
            },
            check=_needs("vod_id"),
        )

    @tag(DB)
    @uses("browse")
    @task(WEIGHTS["browse"])
    def browse(self) -> None:
        self.call("browse")

    @tag(DB)
    @uses("transcriptions")
    @task(WEIGHTS["transcriptions"])
    def list_transcriptions(self) -> None:
        reply = self.call("transcriptions")
        if reply.ok and isinstance(reply.body, list):
            self.transcriptions = [str(t["id"]) for t in reply.body if isinstance(t, dict)][:50]

    @tag(API)
    @uses("member_cities")
    @task(WEIGHTS["member_cities"])
    def member_cities(self) -> None:
        self.call("member_cities")

    @tag(SYSTEM)  # it asks Celery, as health does: both take seconds
    @uses("queue")
    @task(WEIGHTS["queue"])
    def queue(self) -> None:
        self.call("queue")

    # -- publishing (Cablecast) ------------------------------------------------------

    @tag(EXTERNAL)
    @uses("process_vod")
    @task(WEIGHTS["process_vod"])
    def publish(self) -> None:
        """Publish a transcription that exists (seeded by the stack, or seen in the list),
        or, knowing none, one the app does not know: 404."""
        known = [*self.seeded, *self.transcriptions]
        chosen = self.rng.choice(known) if known else None
        self.call("process_vod", vod_id=chosen or str(uuid.UUID(int=self.rng.getrandbits(128))))

    @tag(EXTERNAL)
    @uses("sync_status")
    @task(WEIGHTS["sync_status"])
    def sync_status(self) -> None:
        self.call("sync_status")

    @tag(EXTERNAL)
    @uses("cablecast_shows")
    @task(WEIGHTS["cablecast_shows"])
    def cablecast_shows(self) -> None:
        reply = self.call("cablecast_shows", check=_needs("shows"))
        if reply.ok:
            self.shows = _ids(reply.get("shows"))

    @tag(EXTERNAL)
    @uses("cablecast_show")
    @task(WEIGHTS["cablecast_show"])
    def cablecast_show(self) -> None:
        if self.shows:
            self.call("cablecast_show", vod_id=self.rng.choice(self.shows))

    @tag(EXTERNAL)
    @uses("cablecast_vods")
    @task(WEIGHTS["cablecast_vods"])
    def cablecast_vods(self) -> None:
        reply = self.call("cablecast_vods", check=_needs("vods"))
        if reply.ok:
            self.vods = _ids(reply.get("vods"))

    @tag(EXTERNAL)
    @uses("cablecast_vod")
    @task(WEIGHTS["cablecast_vod"])
    def cablecast_vod(self) -> None:
        if self.vods:
            self.call("cablecast_vod", vod_id=self.rng.choice(self.vods))

    @tag(EXTERNAL)
    @uses("cablecast_chapters")
    @task(WEIGHTS["cablecast_chapters"])
    def chapters(self) -> None:
        if self.vods:
            self.call("cablecast_chapters", vod_id=self.rng.choice(self.vods))

    @tag(EXTERNAL)
    @uses("create_chapter")
    @task(WEIGHTS["create_chapter"])
    def add_chapter(self) -> None:
        if self.vods:
            chapter = {"title": fake_title(self.rng), "startTime": self.rng.randint(0, 7200)}
            self.call(
                "create_chapter",
                vod_id=self.rng.choice(self.vods),
                json_body={"chapter": chapter},
                check=_needs("chapter"),
            )

    @tag(EXTERNAL)
    @uses("cablecast_locations")
    @task(WEIGHTS["cablecast_locations"])
    def locations(self) -> None:
        self.call("cablecast_locations")

    @tag(SYSTEM)
    @uses("health")
    @task(WEIGHTS["health"])
    def health(self) -> None:
        self.call("health", authed=False, check=_healthy(self.api.profile.health_ok_values))


def _needs(key: str) -> Any:
    def check(body: Any) -> str:
        return "" if isinstance(body, dict) and key in body else f"the answer lacks {key!r}"

    return check


def _healthy(values: tuple[str, ...]) -> Any:
    def check(body: Any) -> str:
        status = body.get("status") if isinstance(body, dict) else None
        return "" if status in values else f"health status {status!r}"

    return check


def _ids(items: Any) -> list[int]:
    if not isinstance(items, list):
        return []
    return [i["id"] for i in items if isinstance(i, dict) and isinstance(i.get("id"), int)][:100]


def seed_simulator(cablecast_url: str, shows: int) -> int:
    """Give an empty Cablecast simulator `shows` shows with a VOD each; returns how many
    it made. Anything but our simulator (no ``simulated`` in /systeminfo) is left alone."""
    auth = dict(cablecast_auth_headers())
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not one line per seeding request
    with httpx.Client(base_url=cablecast_url.rstrip("/"), timeout=10, headers=auth) as http:
        info = http.get("/systeminfo").json().get("systemInfo", {})
        if not info.get("simulated"):
            return 0
        have = int(http.get("/shows", params={"page_size": 1}).json()["meta"]["count"])
        for n in range(have, shows):
            title = f"Council meeting {n + 1}"
            made = http.post("/shows", json={"show": {"title": title, "cgTitle": title}})
            show = made.raise_for_status().json()["show"]
            vod = {"vod": {"show": show["id"], "vodConfiguration": 1}}
            http.post("/vods", json=vod).raise_for_status()
        return max(0, shows - have)


@events.test_start.add_listener
def _seed(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return  # the master (or the only process) seeds once
    try:
        profile = profile_of(environment)
    except Exception:  # a bad profile is reported by the plumbing's own check
        return
    if ArchivistFlaskOperator.__name__ not in profile.users:
        return
    url = getattr(environment.parsed_options, "cablecast_url", "") or (
        target.default_cablecast_url(target.stack_config_of(environment))
    )
    try:
        made = seed_simulator(url, int(FLASK["cablecast_shows"]))
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        logging.error("cannot prepare the Cablecast simulator at %s: %s", url, exc)
        return
    if made:
        logging.info("Cablecast simulator at %s: %d shows with a VOD each made", url, made)

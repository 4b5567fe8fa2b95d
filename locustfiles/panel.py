"""A faults panel in Locust's web UI: see the links, add and remove toxics during a run.

Load it next to a workload, the way Locust loads several files:

    locust -f locustfiles/vod.py,locustfiles/panel.py --faults-url http://127.0.0.1:8474

(or `import locustfiles.panel` in a locustfile; `faults/panel.py`, its older place, still
works for both). It registers through Locust's events only:
on `init`, when there is a web UI (not headless, not on workers), it adds

- a "Faults" tab (Locust's `extended_tabs`/`extended_tables` template arguments) that
  lists every link, whether it is up, and each toxic on it as text ("latency=300ms"),
  refreshed with the statistics;
- the tab's controls: Locust's tabs can only hold a table, so `panel.js` (served at
  `/faults/panel.js` and loaded by Locust's page) adds the add/remove form under it;
- their JSON API under `/faults/api/`: `GET state`, `POST inject`
  `{link, toxic, attributes, stream, toxicity}`, `DELETE inject/<id>`, `POST clear`.
  A request for a fault that would do nothing (`bandwidth` without a rate, toxicity 0)
  or that the fault server would refuse gets a 400 naming the field.

What a person injects goes through the same `Injector` as the experiment runner, so it
is journaled (a crash leaves nothing behind that `python -m faults cleanup` cannot
remove), recorded as a fault window in the run folder's `faults.jsonl`, and removed when
Locust quits.
"""

from __future__ import annotations

import json
import logging
import os
import time
import tomllib
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, jsonify, request, send_file, url_for
from locust import events
from locust.env import Environment
from locust.runners import WorkerRunner

from experiments.experiment import REPO_ROOT
from experiments.timeline import Injector
from faults.client import ENV_URL, FaultClient, FaultServerError
from faults.toxic_types import (
    ATTRIBUTE_UNITS,
    DOWN,
    EFFECT_ATTRIBUTES,
    STREAMS,
    TOXIC_ATTRIBUTES,
    TOXICS,
    attribute_problem,
    whole_numbers,
)
from workload.capture import run_dir_of  # also registers --run-dir and the capture
from workload.faults_url import add_faults_url

SCRIPT = Path(__file__).with_name("panel.js")
STATE_TTL_S = 2.0  # the tab refreshes with the stats every 2 s; one fault-server read each
TAB_KEY = "faults"


def default_faults_url() -> str:
    """$TOXIPROXY_URL, else the fault server of config/stack.toml."""
    if url := os.environ.get(ENV_URL):
        return url
    data = tomllib.loads((REPO_ROOT / "config" / "stack.toml").read_text(encoding="utf-8"))
    return f"http://{data.get('host', '127.0.0.1')}:{data['ports']['fault_api']}"


class PanelError(Exception):
    """A request to the panel is malformed; `status` is the HTTP answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def parse_request(body: Any, links: list[str]) -> dict[str, Any]:
    """Validate an inject request; PanelError(400) names the field."""
    if not isinstance(body, dict):
        raise PanelError(400, "body must be a JSON object")
    link, toxic = body.get("link"), body.get("toxic")
    if link not in links:
        raise PanelError(400, f"link {link!r} is not a proxy; known: {', '.join(links)}")
    if toxic not in TOXICS:
        raise PanelError(400, f"toxic {toxic!r} is not known; known: {', '.join(TOXICS)}")
    attributes = body.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise PanelError(400, "attributes must be an object")
    if problem := attribute_problem(toxic, attributes):
        raise PanelError(400, f"{problem[0]} {problem[1]}")
    stream = body.get("stream", "downstream")
    if stream not in STREAMS:
        raise PanelError(400, f"stream {stream!r} is not known; known: {', '.join(STREAMS)}")
    toxicity = body.get("toxicity", 1.0)
    if isinstance(toxicity, bool) or not isinstance(toxicity, int | float) or not 0 < toxicity <= 1:
        raise PanelError(
            400, "toxicity must be a number above 0 and at most 1 (0 would never apply it)"
        )
    return {
        "link": link,
        "toxic": toxic,
        "attributes": whole_numbers(attributes),
        "stream": stream,
        "toxicity": float(toxicity),
    }


def attributes_text(toxic: str, attributes: dict[str, Any]) -> str:
    """`latency=300ms, jitter=50ms`: what a person reads in the tab."""
    units = ATTRIBUTE_UNITS.get(toxic, {})
    return ", ".join(f"{k}={v}{units.get(k, '')}" for k, v in attributes.items()) or "-"


def fault_text(
    link: str, toxic: str, attributes: dict[str, Any], stream: str, toxicity: float
) -> str:
    """`latency latency=300ms on postgres (upstream, toxicity 0.5)`, for the tab."""
    if toxic == DOWN:
        return f"{link} down"
    attrs = f" {attributes_text(toxic, attributes)}" if attributes else ""
    extra = [stream] if stream != "downstream" else []
    if toxicity < 1:
        extra.append(f"toxicity {toxicity:g}")
    return f"{toxic}{attrs} on {link}" + (f" ({', '.join(extra)})" if extra else "")


class Panel:
    """The panel's state: one fault client and one injector for this Locust process."""

    def __init__(self, environment: Environment, url: str) -> None:
        self.environment = environment
        self.client = FaultClient(url, timeout=2.0)
        self.injector = Injector(self.client, run_dir_of(environment))
        self._state: dict[str, Any] | None = None
        self._state_at = 0.0

    def state(self, fresh: bool = False) -> dict[str, Any]:
        """Links as the fault server reports them, plus what this panel injected."""
        if (
            not fresh
            and self._state is not None
            and time.monotonic() - self._state_at < STATE_TTL_S
        ):
            return self._state
        try:
            proxies = self.client.proxies()
            links = [
                {
                    "name": p.name,
                    "enabled": p.enabled,
                    "listen": p.listen,
                    "upstream": p.upstream,
                    "toxics": [
                        {
                            "name": t.name,
                            "type": t.type,
                            "stream": t.stream,
                            "toxicity": t.toxicity,
                            "attributes": t.attributes,
                        }
                        for t in p.toxics
                    ],
                }
                for p in sorted(proxies.values(), key=lambda p: p.name)
            ]
            error = None
        except FaultServerError as exc:
            links, error = [], str(exc)
        self._state = {
            "url": self.client.url,
            "error": error,
            "links": links,
            "injected": [
                {
                    "id": a.id,
                    "link": a.link,
                    "toxic": a.toxic,
                    "what": a.what,
                    "text": fault_text(a.link, a.toxic, a.attributes, a.stream, a.toxicity),
                    "since": a.start,
                }
                for a in self.injector.active.values()
            ],
            "toxics": {
                name: {
                    "attributes": [
                        {"name": a, "unit": ATTRIBUTE_UNITS[name][a]}
                        for a in TOXIC_ATTRIBUTES.get(name, ())
                    ],
                    "needs": list(EFFECT_ATTRIBUTES.get(name, ())),
                }
                for name in TOXICS
            },
            "streams": list(STREAMS),
        }
        self._state_at = time.monotonic()
        return self._state

    def rows(self) -> list[dict[str, Any]]:
        """The Faults tab's table: one row per toxic (one per link without any)."""
        state = self.state()
        if state["error"]:
            return [{"link": "(fault server)", "state": "unavailable", "toxic": state["error"]}]
        ours = {a.name for a in self.injector.active.values() if a.toxic != DOWN}
        ours_down = {a.link for a in self.injector.active.values() if a.toxic == DOWN}
        rows = []
        for link in state["links"]:
            up = link["enabled"]
            row = {"link": link["name"], "state": "up" if up else "DOWN"}
            if not up:
                row["added"] = "this tab" if link["name"] in ours_down else "elsewhere"
            if not link["toxics"]:
                rows.append({**row, "toxic": "-"})
            for t in link["toxics"]:
                rows.append(
                    {
                        **row,
                        "toxic": t["type"],
                        "stream": t["stream"],
                        "attributes": attributes_text(t["type"], t["attributes"]),
                        "toxicity": f"{t['toxicity']:g}",
                        "added": "this tab" if t["name"] in ours else "elsewhere",
                    }
                )
        return rows

    def inject(self, body: Any) -> dict[str, Any]:
        links = [link["name"] for link in self.state(fresh=True)["links"]]
        spec = parse_request(body, links)
        try:
            active = self.injector.inject(**spec)
        except FaultServerError as exc:
            raise PanelError(502, f"the fault server refused: {exc}") from None
        self._state = None
        return {"id": active.id, "what": active.what, "link": active.link, "toxic": active.toxic}

    def remove(self, ident: str) -> dict[str, Any]:
        if ident not in self.injector.active:
            raise PanelError(404, f"no fault {ident!r} injected by this panel")
        try:
            window = self.injector.remove(ident)
        except FaultServerError as exc:
            raise PanelError(502, f"the fault server refused: {exc}") from None
        self._state = None
        return window

    def clear(self) -> list[str]:
        problems = self.injector.remove_all()
        self._state = None
        if problems:
            raise PanelError(502, "; ".join(problems))
        return []


def _error(exc: PanelError) -> tuple[Response, int]:
    return jsonify({"error": str(exc)}), exc.status


def install(environment: Environment, panel: Panel) -> None:
    """Routes, the tab, and the table data on Locust's Flask app."""
    web_ui = environment.web_ui
    assert web_ui is not None
    app = web_ui.app
    assert app is not None
    auth = web_ui.auth_required_if_enabled
    blueprint = Blueprint("loadkit_faults", __name__)

    @blueprint.route("/faults/panel.js")
    @auth
    def script() -> Response:
        return send_file(SCRIPT, mimetype="text/javascript")

    @blueprint.route("/faults/api/state")
    @auth
    def state() -> Response:
        return jsonify(panel.state(fresh=True))

    @blueprint.route("/faults/api/inject", methods=["POST"])
    @auth
    def inject() -> tuple[Response, int]:
        body = request.get_json(silent=True)
        try:
            return jsonify(panel.inject(body)), 201
        except PanelError as exc:
            return _error(exc)

    @blueprint.route("/faults/api/inject/<ident>", methods=["DELETE"])
    @auth
    def remove(ident: str) -> tuple[Response, int]:
        try:
            return jsonify(panel.remove(ident)), 200
        except PanelError as exc:
            return _error(exc)

    @blueprint.route("/faults/api/clear", methods=["POST"])
    @auth
    def clear() -> tuple[Response, int]:
        try:
            panel.clear()
            return jsonify({"removed": True}), 200
        except PanelError as exc:
            return _error(exc)

    app.register_blueprint(blueprint)

    @app.after_request
    def add_table(response: Response) -> Response:
        if request.endpoint == "locust.index" and response.mimetype == "text/html":
            # The tab's controls: Locust's extended tabs render a table and nothing else.
            tag = f'<script src="{url_for("loadkit_faults.script")}" defer></script>'
            page = response.get_data(as_text=True)
            if "</body>" in page and tag not in page:
                response.set_data(page.replace("</body>", f"{tag}\n</body>", 1))
            return response
        if request.path.rstrip("/").endswith("/stats/requests") and response.is_json:
            data = response.get_json()
            if isinstance(data, dict):
                extended = [e for e in data.get("extended_stats") or [] if e.get("key") != TAB_KEY]
                extended.append({"key": TAB_KEY, "data": panel.rows()})
                data["extended_stats"] = extended
                response.set_data(json.dumps(data))
        return response

    args = web_ui.template_args
    args["extended_tabs"] = [*args.get("extended_tabs", []), {"title": "Faults", "key": TAB_KEY}]
    args["extended_tables"] = [
        *args.get("extended_tables", []),
        {
            "key": TAB_KEY,
            "structure": [
                {"key": "link", "title": "Link"},
                {"key": "state", "title": "State"},
                {"key": "toxic", "title": "Toxic"},
                {"key": "stream", "title": "Stream"},
                {"key": "attributes", "title": "Attributes"},
                {"key": "toxicity", "title": "Toxicity"},
                {"key": "added", "title": "Added"},
            ],
        },
    ]


_panel: Panel | None = None


events.init_command_line_parser.add_listener(add_faults_url)  # shared with workload.links


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    global _panel
    if environment.web_ui is None or isinstance(environment.runner, WorkerRunner):
        return  # headless or a worker: faults are injected by one process only
    # The tab reads the fault server every 2 s; httpx would log each read at INFO.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    opts = environment.parsed_options
    url = (getattr(opts, "faults_url", "") if opts is not None else "") or default_faults_url()
    _panel = Panel(environment, url)
    install(environment, _panel)


@events.quitting.add_listener
def _on_quitting(**_: Any) -> None:
    if _panel is not None:
        _panel.injector.remove_all(" (removed when Locust quit)")
        _panel.client.close()

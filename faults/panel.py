"""A faults panel in Locust's web UI: see the links, add and remove toxics during a run.

Load it next to a workload, the way Locust loads several files:

    locust -f locustfiles/vod.py,faults/panel.py --faults-url http://127.0.0.1:8474

(or `import faults.panel` in a locustfile). It registers through Locust's events only:
on `init`, when there is a web UI (not headless, not on workers), it adds

- a "Faults" tab (Locust's `extended_tabs`/`extended_tables` template arguments) that
  lists every link, whether it is up, and its toxics, refreshed with the statistics;
- a page `/faults` with the controls, and its JSON API under `/faults/api/`:
  `GET state`, `POST inject` `{link, toxic, attributes, stream, toxicity}`,
  `DELETE inject/<id>`, `POST clear`.

What a person injects goes through the same `Injector` as the experiment runner, so it
is journaled (a crash leaves nothing behind that `python -m faults cleanup` cannot
remove), recorded as a fault window in the run folder's `faults.jsonl`, and removed when
Locust quits.
"""

from __future__ import annotations

import json
import math
import os
import time
import tomllib
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, jsonify, request, send_file
from locust import events
from locust.env import Environment
from locust.runners import WorkerRunner

from analysis.capture import run_dir_of  # also registers --run-dir and the capture
from faults.client import ENV_URL, FaultClient, FaultServerError
from faults.experiment import REPO_ROOT, STREAMS, TOXIC_ATTRIBUTES, TOXICS
from faults.timeline import Injector

PAGE = Path(__file__).with_name("panel.html")
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
    for key, value in attributes.items():
        if key not in TOXIC_ATTRIBUTES.get(toxic, ()):
            known = ", ".join(TOXIC_ATTRIBUTES.get(toxic, ())) or "none"
            raise PanelError(
                400, f"attributes.{key} is not an attribute of {toxic}; known: {known}"
            )
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise PanelError(400, f"attributes.{key} must be a number")
        if not math.isfinite(value) or value < 0 or value != int(value):
            # As in experiment files: a real Toxiproxy takes a negative and may crash on it.
            raise PanelError(400, f"attributes.{key} must be a whole number >= 0, got {value}")
    stream = body.get("stream", "downstream")
    if stream not in STREAMS:
        raise PanelError(400, f"stream {stream!r} is not known; known: {', '.join(STREAMS)}")
    toxicity = body.get("toxicity", 1.0)
    if (
        isinstance(toxicity, bool)
        or not isinstance(toxicity, int | float)
        or not 0 <= toxicity <= 1
    ):
        raise PanelError(400, "toxicity must be a number from 0 to 1")
    return {
        "link": link,
        "toxic": toxic,
        "attributes": attributes,
        "stream": stream,
        "toxicity": float(toxicity),
    }


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
                {"id": a.id, "link": a.link, "toxic": a.toxic, "what": a.what, "since": a.start}
                for a in self.injector.active.values()
            ],
            "toxics": {name: list(TOXIC_ATTRIBUTES.get(name, ())) for name in TOXICS},
            "streams": list(STREAMS),
        }
        self._state_at = time.monotonic()
        return self._state

    def rows(self) -> list[dict[str, Any]]:
        """The Faults tab's table: one row per link."""
        state = self.state()
        if state["error"]:
            return [{"link": "(fault server)", "state": "unavailable", "toxics": state["error"]}]
        return [
            {
                "link": link["name"],
                "state": "up" if link["enabled"] else "DOWN",
                "toxics": ", ".join(
                    f"{t['type']} {t['attributes']} ({t['stream']})" for t in link["toxics"]
                )
                or "-",
            }
            for link in state["links"]
        ]

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

    @blueprint.route("/faults")
    @auth
    def page() -> Response:
        return send_file(PAGE, mimetype="text/html")

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
                {"key": "toxics", "title": "Toxics"},
            ],
        },
    ]
    args["extended_csv_files"] = [
        *args.get("extended_csv_files", []),
        {"href": "/faults", "title": "Faults panel: add and remove toxics"},
    ]


_panel: Panel | None = None


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any) -> None:
    parser.add_argument(
        "--faults-url",
        default="",
        include_in_web_ui=False,
        help="Toxiproxy API for the web UI's faults panel "
        f"(default ${ENV_URL}, else the fault server of config/stack.toml)",
    )


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    global _panel
    if environment.web_ui is None or isinstance(environment.runner, WorkerRunner):
        return  # headless or a worker: faults are injected by one process only
    opts = environment.parsed_options
    url = (getattr(opts, "faults_url", "") if opts is not None else "") or default_faults_url()
    _panel = Panel(environment, url)
    install(environment, _panel)


@events.quitting.add_listener
def _on_quitting(**_: Any) -> None:
    if _panel is not None:
        _panel.injector.remove_all(" (removed when Locust quit)")
        _panel.client.close()

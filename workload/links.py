"""Bytes per link in the run: what the workload sent through each fault proxy.

At test start and stop the master (or the single process) reads the fault server's
``/metrics`` and writes the difference into ``meta.json`` as ``links``:
``{"postgres": {"upstream": bytes, "downstream": bytes}, ...}``. A link that carried no
byte during a run was not exercised by it, whatever the run's verdict says; the
experiment runner uses the same figures to call a fault that hit nothing.

Which fault server: ``--faults-url``, else ``$TOXIPROXY_URL``, else, when the target is the
local reference stack (no ``--host``), the fault API of config/stack.toml. With none
reachable, ``links`` is null and the log says why.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from locust import events
from locust.env import Environment
from locust.runners import WorkerRunner

from faults.client import ENV_URL, FaultClient, FaultServerError
from faults.linkbytes import LinkBytes, difference
from workload import target
from workload.capture import record_in_meta, run_dir_of

log = logging.getLogger(__name__)

_start: dict[str, Any] = {}


def faults_url_of(environment: Environment) -> str | None:
    opts = environment.parsed_options
    chosen = getattr(opts, "faults_url", "") if opts is not None else ""
    if chosen:
        return str(chosen)
    if os.environ.get(ENV_URL):
        return os.environ[ENV_URL]
    host = getattr(opts, "host", "") if opts is not None else ""
    default_api = target.default_api_url(target.stack_config_of(environment))
    if not host or host.rstrip("/") == default_api:
        ports = target.stack_ports(target.stack_config_of(environment))
        return f"http://{ports['host']}:{ports['fault_api']}"
    return None


def read_link_bytes(url: str) -> tuple[LinkBytes | None, str]:
    """(bytes per link, '') or (None, why not)."""
    try:
        with FaultClient(url, timeout=3.0) as client:
            return client.link_bytes(), ""
    except (FaultServerError, ValueError) as exc:
        return None, f"{url}: {exc}"


@events.test_start.add_listener
def _read_at_start(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return
    url = faults_url_of(environment)
    _start.clear()
    if url is None:
        _start["why"] = "no fault server known (give --faults-url or $TOXIPROXY_URL)"
        return
    _start["url"] = url
    _start["bytes"], _start["why"] = read_link_bytes(url)


@events.test_stop.add_listener
def _record_at_stop(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, WorkerRunner) or not _start:
        return
    links: LinkBytes | None = None
    why = _start.get("why", "")
    if _start.get("bytes") is not None:
        after, why = read_link_bytes(_start["url"])
        if after is not None:
            links = difference(after, _start["bytes"])
    if links is None:
        log.warning("bytes per link not recorded: %s", why)
    else:
        log.info(
            "bytes per link: %s",
            ", ".join(f"{k} {sum(v.values())}" for k, v in sorted(links.items())),
        )
    record_in_meta(
        run_dir_of(environment), links=links, links_source=_start.get("url"), links_note=why
    )

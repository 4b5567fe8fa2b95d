"""Bytes per link, from the fault server's Prometheus metrics: did the workload use a link?

The fault server (like Toxiproxy with metrics on) counts the bytes it reads on each proxy
per direction (``toxiproxy_proxy_received_bytes{proxy,direction}``). Two readings, at the
start and the end of a load or of a fault window, say how much traffic each link carried
in between: a fault on a link that carried nothing tested nothing. Parsing and
differences are pure functions; reading is `FaultClient.link_bytes`.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client.parser import text_string_to_metric_families

RECEIVED = "toxiproxy_proxy_received_bytes"

LinkBytes = dict[str, dict[str, int]]  # link -> direction (upstream|downstream) -> bytes


def parse_metrics(text: str) -> LinkBytes:
    """Bytes read per proxy and direction from a /metrics page (ValueError if unparsable)."""
    result: LinkBytes = {}
    for family in text_string_to_metric_families(text):
        if family.name != RECEIVED:
            continue
        for sample in family.samples:
            if not sample.name.endswith("_total") and sample.name != RECEIVED:
                continue  # the _created sample of a counter
            proxy, direction = sample.labels.get("proxy"), sample.labels.get("direction")
            if proxy and direction:
                result.setdefault(proxy, {})[direction] = int(sample.value)
    return result


def difference(
    after: Mapping[str, Mapping[str, int]], before: Mapping[str, Mapping[str, int]]
) -> LinkBytes:
    """Bytes per link and direction between two readings (a link new since `before` counts
    from 0; a counter that went down, as after a server restart, counts from 0 too)."""
    result: LinkBytes = {}
    for link, directions in after.items():
        earlier = before.get(link, {})
        result[link] = {
            d: n - earlier.get(d, 0) if n >= earlier.get(d, 0) else n for d, n in directions.items()
        }
    return result


def total(per_direction: Mapping[str, int] | None) -> int:
    return sum(per_direction.values()) if per_direction else 0

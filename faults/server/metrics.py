"""Prometheus metrics, computed at scrape time from plain integer counters.

The data path only adds integers; this collector turns them into metric families when
``/metrics`` is read. Byte counter names and labels follow the real Toxiproxy.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from faults.server.collection import Collection


class ProxyCollector(Collector):
    def __init__(self, collection: Collection) -> None:
        self.collection = collection

    def collect(self) -> Iterator[Metric]:
        labels = ["direction", "listener", "proxy", "upstream"]
        received = CounterMetricFamily(
            "toxiproxy_proxy_received_bytes",
            "Bytes read from the source, per direction",
            labels=labels,
        )
        sent = CounterMetricFamily(
            "toxiproxy_proxy_sent_bytes",
            "Bytes written to the destination, per direction",
            labels=labels,
        )
        connections = GaugeMetricFamily(
            "toxiproxy_proxy_open_connections", "Open proxied connections", labels=["proxy"]
        )
        toxics = GaugeMetricFamily(
            "toxiproxy_proxy_active_toxics", "Toxics configured on the proxy", labels=["proxy"]
        )
        for proxy in list(self.collection.proxies.values()):
            for stream, (got, put) in proxy.bytes_total().items():
                values = [stream, proxy.listen, proxy.name, proxy.upstream]
                received.add_metric(values, got)
                sent.add_metric(values, put)
            connections.add_metric([proxy.name], len(proxy.connections))
            toxics.add_metric([proxy.name], len(proxy.toxics))
        yield received
        yield sent
        yield connections
        yield toxics


def make_registry(collection: Collection) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ProxyCollector(collection))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)

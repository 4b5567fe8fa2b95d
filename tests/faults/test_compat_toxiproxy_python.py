"""The unmodified `toxiproxy-python` package works against our servers.

That package keeps host and port as class attributes of `APIConsumer`; the fixture
points them at the target and restores them afterwards.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from toxiproxy import Proxy, Toxiproxy
from toxiproxy.api import APIConsumer
from toxiproxy.exceptions import NotFound, ProxyExists

from faults.client import FaultClient
from faults.embedded import free_port


@pytest.fixture
def toxiproxy(fault_client: FaultClient) -> Iterator[Toxiproxy]:
    saved = (APIConsumer.host, APIConsumer.port)
    url = urlsplit(fault_client.url)
    server = Toxiproxy()
    server.update_api_consumer(url.hostname, url.port)
    try:
        yield server
    finally:
        APIConsumer.host, APIConsumer.port = saved


def connectable(proxy: Proxy) -> bool:
    host, port = proxy.listen.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


def test_running_and_version(toxiproxy: Toxiproxy) -> None:
    assert toxiproxy.running() is True
    assert b"version" in toxiproxy.version()


def test_create_list_and_destroy(toxiproxy: Toxiproxy, echo_upstream: str) -> None:
    proxy = toxiproxy.create(upstream=echo_upstream, name="db")
    assert (proxy.name, proxy.upstream, proxy.enabled) == ("db", echo_upstream, True)
    assert proxy.listen.startswith("127.0.0.1:") and connectable(proxy)
    assert set(toxiproxy.proxies()) == {"db"}
    assert toxiproxy.get_proxy("db").listen == proxy.listen
    with pytest.raises(ProxyExists):
        toxiproxy.create(upstream=echo_upstream, name="db")
    assert toxiproxy.destroy(proxy) is True
    assert toxiproxy.proxies() == {}
    with pytest.raises(NotFound):
        proxy.destroy()


def test_add_list_and_remove_toxics(toxiproxy: Toxiproxy, echo_upstream: str) -> None:
    proxy = toxiproxy.create(upstream=echo_upstream, name="db")
    proxy.add_toxic(type="latency", attributes={"latency": 100})
    proxy.add_toxic(type="bandwidth", stream="upstream", name="narrow", attributes={"rate": 5})
    toxics = proxy.toxics()
    assert list(toxics) == ["narrow", "latency_downstream"]
    latency = proxy.get_toxic("latency_downstream")
    assert (latency.type, latency.stream, latency.toxicity) == ("latency", "downstream", 1.0)
    assert latency.attributes["latency"] == 100
    assert proxy.destroy_toxic("narrow") is True
    assert list(proxy.toxics()) == ["latency_downstream"]
    assert proxy.get_toxic("narrow") is None


def test_down_disables_then_enables(toxiproxy: Toxiproxy, echo_upstream: str) -> None:
    proxy = toxiproxy.create(upstream=echo_upstream, name="db")
    with proxy.down():
        assert toxiproxy.get_proxy("db").enabled is False
        assert not connectable(proxy)
    assert toxiproxy.get_proxy("db").enabled is True
    assert connectable(proxy)


def test_populate_creates_once(toxiproxy: Toxiproxy, echo_upstream: str) -> None:
    spec = [{"name": "db", "upstream": echo_upstream, "listen": f"127.0.0.1:{free_port()}"}]
    created = toxiproxy.populate(spec)
    assert [p.name for p in created] == ["db"]
    assert toxiproxy.populate(spec) == []  # unchanged: kept, not recreated


def test_reset_and_destroy_all(toxiproxy: Toxiproxy, echo_upstream: str) -> None:
    proxy = toxiproxy.create(upstream=echo_upstream, name="db", enabled=False)
    proxy.add_toxic(type="latency", attributes={"latency": 100})
    assert toxiproxy.reset() is True
    after = toxiproxy.get_proxy("db")
    assert after.enabled is True and after.toxics() == {}
    toxiproxy.destroy_all()
    assert toxiproxy.proxies() == {}

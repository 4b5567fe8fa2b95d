"""FaultClient against real servers: every method, error mapping, timeouts, isolation."""

from __future__ import annotations

import socket
import time

import pytest
from toxiproxy import exceptions as tp_exceptions

from faults.client import (
    FaultBadRequest,
    FaultClient,
    FaultConflict,
    FaultNotFound,
    FaultServerError,
    FaultServerUnavailable,
    ProxyInfo,
)
from faults.demo import round_trip_ms
from faults.embedded import embedded_fault_server, free_port


def can_connect(proxy: ProxyInfo) -> bool:
    try:
        with socket.create_connection((proxy.listen_host, proxy.listen_port), timeout=2):
            return True
    except OSError:
        return False


def test_version_is_a_non_empty_string(fault_client: FaultClient) -> None:
    assert isinstance(fault_client.version(), str)
    assert fault_client.version()


def test_create_proxy_reports_bound_listen_address_and_forwards(
    fault_client: FaultClient, echo_upstream: str
) -> None:
    proxy = fault_client.create_proxy("db", upstream=echo_upstream)
    assert proxy == ProxyInfo("db", proxy.listen, echo_upstream, True, [])
    assert proxy.listen_host == "127.0.0.1" and proxy.listen_port > 0
    assert round_trip_ms(proxy.listen_host, proxy.listen_port, 3) < 1000


def test_proxies_and_proxy_list_what_exists(fault_client: FaultClient, echo_upstream: str) -> None:
    a = fault_client.create_proxy("a", upstream=echo_upstream)
    b = fault_client.create_proxy("b", upstream=echo_upstream, enabled=False)
    assert fault_client.proxies() == {"a": a, "b": b}
    assert fault_client.proxy("b").enabled is False


def test_update_proxy_keeps_omitted_fields(fault_client: FaultClient, echo_upstream: str) -> None:
    created = fault_client.create_proxy("db", upstream=echo_upstream)
    updated = fault_client.update_proxy("db", upstream="127.0.0.1:1")
    assert updated.upstream == "127.0.0.1:1"
    assert updated.listen == created.listen and updated.enabled is True


def test_update_proxy_rejects_unknown_fields(fault_client: FaultClient) -> None:
    with pytest.raises(
        ValueError, match="unknown field 'enable'; known: enabled, listen, upstream"
    ):
        fault_client.update_proxy("db", enable=False)


def test_disable_refuses_connections_and_enable_restores(
    fault_client: FaultClient, echo_upstream: str
) -> None:
    proxy = fault_client.create_proxy("db", upstream=echo_upstream)
    fault_client.disable("db")
    assert fault_client.proxy("db").enabled is False
    assert not can_connect(proxy)
    fault_client.enable("db")
    assert fault_client.proxy("db").enabled is True
    assert round_trip_ms(proxy.listen_host, proxy.listen_port, 3) < 1000


def test_delete_proxy_removes_it(fault_client: FaultClient, echo_upstream: str) -> None:
    fault_client.create_proxy("db", upstream=echo_upstream)
    fault_client.delete_proxy("db")
    assert "db" not in fault_client.proxies()
    with pytest.raises(FaultNotFound, match="proxy not found"):
        fault_client.delete_proxy("db")


def test_toxic_lifecycle_add_list_update_remove(
    fault_client: FaultClient, echo_upstream: str
) -> None:
    fault_client.create_proxy("db", upstream=echo_upstream)
    toxic = fault_client.add_toxic("db", "latency", {"latency": 100})
    assert (toxic.name, toxic.type, toxic.stream, toxic.toxicity) == (
        "latency_downstream",
        "latency",
        "downstream",
        1.0,
    )
    assert toxic.attributes["latency"] == 100
    assert fault_client.toxics("db") == [toxic]
    assert fault_client.toxic("db", toxic.name) == toxic
    assert fault_client.proxy("db").toxics == [toxic]

    updated = fault_client.update_toxic("db", toxic.name, {"jitter": 10}, toxicity=0.5)
    assert updated.attributes["latency"] == 100  # merged, not replaced
    assert updated.attributes["jitter"] == 10
    assert updated.toxicity == 0.5
    assert (updated.type, updated.stream) == ("latency", "downstream")

    only_toxicity = fault_client.update_toxic("db", toxic.name, toxicity=0.25)
    assert only_toxicity.attributes == updated.attributes and only_toxicity.toxicity == 0.25

    fault_client.remove_toxic("db", toxic.name)
    assert fault_client.toxics("db") == []


def test_named_upstream_toxic(fault_client: FaultClient, echo_upstream: str) -> None:
    fault_client.create_proxy("db", upstream=echo_upstream)
    toxic = fault_client.add_toxic(
        "db", "bandwidth", {"rate": 10}, stream="upstream", toxicity=0.3, name="narrow"
    )
    assert (toxic.name, toxic.type, toxic.stream) == ("narrow", "bandwidth", "upstream")
    assert toxic.toxicity == pytest.approx(0.3)  # the real server keeps a float32
    assert toxic.attributes["rate"] == 10


def test_latency_toxic_slows_an_open_connection_and_removal_restores(
    fault_client: FaultClient, echo_upstream: str
) -> None:
    proxy = fault_client.create_proxy("db", upstream=echo_upstream)
    host, port = proxy.listen_host, proxy.listen_port
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def ping_ms() -> float:
            start = time.perf_counter()
            sock.sendall(b"p" * 64)
            got = b""
            while len(got) < 64:
                chunk = sock.recv(64 - len(got))
                assert chunk, "connection closed"
                got += chunk
            return (time.perf_counter() - start) * 1000

        ping_ms()
        fault_client.add_toxic("db", "latency", {"latency": 200})
        assert min(ping_ms() for _ in range(3)) >= 180  # applies to the open connection
        fault_client.remove_toxic("db", "latency_downstream")
        # Half the toxic's latency: gone, with room for a busy machine's scheduling delay.
        assert min(ping_ms() for _ in range(5)) < 100


def test_reset_enables_proxies_and_removes_toxics(
    fault_client: FaultClient, echo_upstream: str
) -> None:
    fault_client.create_proxy("db", upstream=echo_upstream, enabled=False)
    fault_client.create_proxy("cache", upstream=echo_upstream)
    fault_client.add_toxic("cache", "latency", {"latency": 10})
    fault_client.reset()
    proxies = fault_client.proxies()
    assert set(proxies) == {"db", "cache"}
    assert all(p.enabled and p.toxics == [] for p in proxies.values())


# -- errors ------------------------------------------------------------------------------


def test_errors_carry_status_and_server_message(
    fault_client: FaultClient, echo_upstream: str
) -> None:
    fault_client.create_proxy("db", upstream=echo_upstream)
    fault_client.add_toxic("db", "latency", {"latency": 1})
    cases: list[tuple[object, type[FaultServerError], int, str]] = [
        (lambda: fault_client.proxy("nope"), FaultNotFound, 404, "proxy not found"),
        (lambda: fault_client.toxic("db", "nope"), FaultNotFound, 404, "toxic not found"),
        (lambda: fault_client.remove_toxic("db", "nope"), FaultNotFound, 404, "toxic not found"),
        (lambda: fault_client.add_toxic("nope", "latency"), FaultNotFound, 404, "proxy not found"),
        (
            lambda: fault_client.create_proxy("db", upstream=echo_upstream),
            FaultConflict,
            409,
            "proxy already exists",
        ),
        (
            lambda: fault_client.add_toxic("db", "latency", {"latency": 1}),
            FaultConflict,
            409,
            "toxic already exists",
        ),
        (
            lambda: fault_client.add_toxic("db", "no_such"),
            FaultBadRequest,
            400,
            "invalid toxic type",
        ),
        (
            lambda: fault_client.add_toxic("db", "latency", stream="sideways"),
            FaultBadRequest,
            400,
            "stream was invalid, can be either upstream or downstream",
        ),
        (
            lambda: fault_client.create_proxy("", upstream=echo_upstream),
            FaultBadRequest,
            400,
            "missing required field: name",
        ),
    ]
    for call, error_type, status, message in cases:
        with pytest.raises(error_type) as caught:
            call()  # type: ignore[operator]
        assert (caught.value.status, caught.value.message) == (status, message)


def test_errors_are_toxiproxy_python_exceptions_too(fault_client: FaultClient) -> None:
    """Code written for toxiproxy-python's exceptions keeps catching ours."""
    with pytest.raises(tp_exceptions.NotFound):
        fault_client.proxy("nope")


def test_server_error_500_is_an_error_not_a_key_error(
    fault_client: FaultClient, echo_upstream: str
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(FaultServerError) as caught:
            fault_client.create_proxy("db", upstream=echo_upstream, listen=f"127.0.0.1:{port}")
    assert caught.value.status == 500 and caught.value.message


def test_connection_refused_names_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with FaultClient(url, timeout=2) as client, pytest.raises(FaultServerUnavailable) as caught:
        client.proxies()
    assert url in str(caught.value) and caught.value.status is None


def test_server_that_never_answers_times_out_quickly() -> None:
    with socket.socket() as silent:  # the kernel accepts; nobody ever reads or answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with FaultClient(url, timeout=0.5) as client:
            start = time.monotonic()
            with pytest.raises(FaultServerUnavailable, match="no answer"):
                client.proxies()
            assert time.monotonic() - start < 3


def test_bad_url_is_rejected_clearly() -> None:
    with pytest.raises(ValueError, match="must look like http://HOST:PORT"):
        FaultClient("127.0.0.1:8474")


# -- populate ----------------------------------------------------------------------------


def test_populate_is_idempotent_and_keeps_toxics(
    fault_client: FaultClient, echo_upstream: str
) -> None:
    listen = f"127.0.0.1:{free_port()}"
    spec = [{"name": "db", "listen": listen, "upstream": echo_upstream}]
    first = fault_client.populate(spec)
    assert [(p.name, p.listen, p.upstream, p.enabled) for p in first] == [
        ("db", listen, echo_upstream, True)
    ]
    fault_client.add_toxic("db", "latency", {"latency": 5})
    with socket.create_connection(("127.0.0.1", int(listen.rsplit(":", 1)[1])), timeout=5) as sock:
        second = fault_client.populate(spec)
        assert [p.name for p in second] == ["db"]
        assert [t.name for t in fault_client.toxics("db")] == ["latency_downstream"]
        sock.sendall(b"still open")  # the kept proxy did not drop its connection
        assert sock.recv(64) == b"still open"


def test_populate_replaces_changed_and_keeps_unnamed(
    fault_client: FaultClient, echo_upstream: str
) -> None:
    fault_client.create_proxy("other", upstream=echo_upstream)
    listen = f"127.0.0.1:{free_port()}"
    fault_client.populate([{"name": "db", "listen": listen, "upstream": echo_upstream}])
    fault_client.add_toxic("db", "latency", {"latency": 5})
    replaced = fault_client.populate([{"name": "db", "listen": listen, "upstream": "127.0.0.1:1"}])
    assert replaced[0].upstream == "127.0.0.1:1"
    assert fault_client.toxics("db") == []
    assert set(fault_client.proxies()) == {"db", "other"}


def test_populate_rejects_a_bad_entry_and_creates_nothing(
    fault_client: FaultClient, echo_upstream: str
) -> None:
    with pytest.raises(FaultBadRequest, match="missing required field"):
        fault_client.populate(
            [{"name": "ok", "upstream": echo_upstream, "listen": "127.0.0.1:0"}, {"name": "bad"}]
        )
    assert fault_client.proxies() == {}


# -- isolation and selection -------------------------------------------------------------


def test_two_clients_to_two_servers_do_not_clash(embedded_url: str, echo_upstream: str) -> None:
    with embedded_fault_server() as other_url:
        assert other_url != embedded_url
        with FaultClient(embedded_url) as one, FaultClient(other_url) as two:
            try:
                one.create_proxy("same", upstream=echo_upstream)
                two.create_proxy("same", upstream="127.0.0.1:1")
                assert one.proxy("same").upstream == echo_upstream
                assert two.proxy("same").upstream == "127.0.0.1:1"
                two.delete_proxy("same")
                assert "same" in one.proxies()
            finally:
                for client in (one, two):
                    if "same" in client.proxies():
                        client.delete_proxy("same")


def test_from_env_uses_toxiproxy_url(monkeypatch: pytest.MonkeyPatch, embedded_url: str) -> None:
    monkeypatch.setenv("TOXIPROXY_URL", embedded_url)
    assert FaultClient.from_env().url == embedded_url
    monkeypatch.delenv("TOXIPROXY_URL")
    assert FaultClient.from_env(default="http://127.0.0.1:9").url == "http://127.0.0.1:9"

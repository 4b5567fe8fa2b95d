"""The HTTP contract: every endpoint, status code, JSON shape and error message."""

from __future__ import annotations

import socket

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.faults.server.conftest import EchoServer
from tests.faults.server.tcp import connect, recv_exactly, round_trip


def assert_closed(sock: socket.socket) -> None:
    sock.settimeout(5)
    try:
        assert sock.recv(10) == b""
    except ConnectionResetError:
        pass
    finally:
        sock.close()


def error(response: httpx.Response, status: int, message: str) -> None:
    assert response.status_code == status, response.text
    assert response.json() == {"error": message, "status": status}


def test_version_is_json_with_trailing_newline(api: httpx.Client) -> None:
    response = api.get("/version")
    assert response.status_code == 200
    assert response.text.endswith("}\n")
    assert set(response.json()) == {"version"}


def test_create_get_list_and_delete_proxy(api: httpx.Client, echo: EchoServer) -> None:
    created = api.post("/proxies", json={"name": "a", "upstream": echo.address})
    assert created.status_code == 201
    body = created.json()
    assert set(body) == {"name", "listen", "upstream", "enabled", "toxics"}
    assert body["enabled"] is True and body["toxics"] == []
    assert api.get("/proxies/a").json() == body
    assert api.get("/proxies").json() == {"a": body}
    deleted = api.delete("/proxies/a")
    assert deleted.status_code == 204 and deleted.content == b""
    error(api.get("/proxies/a"), 404, "proxy not found")


@pytest.mark.parametrize(
    ("listen", "host"), [("127.0.0.1:0", "127.0.0.1"), ("localhost:0", "127.0.0.1")]
)
def test_listen_is_reported_as_the_bound_address(
    api: httpx.Client, echo: EchoServer, listen: str, host: str
) -> None:
    body = api.post("/proxies", json={"name": "b", "listen": listen, "upstream": echo.address})
    reported_host, port = body.json()["listen"].rsplit(":", 1)
    assert reported_host == host and int(port) > 0
    with connect(body.json()["listen"]) as sock:  # and it really listens there
        round_trip(sock, b"ping")


def test_create_errors(api: httpx.Client, echo: EchoServer) -> None:
    error(
        api.post("/proxies", json={"upstream": echo.address}), 400, "missing required field: name"
    )
    error(api.post("/proxies", json={"name": "c"}), 400, "missing required field: upstream")
    malformed = api.post("/proxies", content=b"{nope")
    assert malformed.status_code == 400 and malformed.json()["status"] == 400
    assert malformed.json()["error"].startswith("bad request body: ")
    assert api.post("/proxies", content=b"").json()["error"] == "bad request body: EOF"
    assert api.post("/proxies", json={"name": "c", "upstream": echo.address}).status_code == 201
    error(
        api.post("/proxies", json={"name": "c", "upstream": echo.address}),
        409,
        "proxy already exists",
    )


def test_listen_port_taken_is_a_500(api: httpx.Client, echo: EchoServer) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = f"127.0.0.1:{holder.getsockname()[1]}"
        response = api.post(
            "/proxies", json={"name": "d", "listen": taken, "upstream": echo.address}
        )
    assert response.status_code == 500
    assert response.json()["status"] == 500 and "listen tcp" in response.json()["error"]
    assert api.get("/proxies").json() == {}


def test_update_keeps_omitted_fields_and_moves_on_new_listen(
    api: httpx.Client, proxy: dict[str, object], echo: EchoServer
) -> None:
    listen = proxy["listen"]
    sock = connect(listen)
    round_trip(sock, b"before")
    same = api.patch("/proxies/echo", json={"listen": listen})
    assert same.json()["listen"] == listen
    round_trip(sock, b"unchanged listen keeps connections")
    moved = api.post("/proxies/echo", json={"listen": "127.0.0.1:0"})  # deprecated spelling
    assert moved.status_code == 200
    assert moved.json()["listen"] != listen and moved.json()["upstream"] == echo.address
    assert_closed(sock)  # the restart dropped the connection
    with connect(moved.json()["listen"]) as again:
        round_trip(again, b"after")
    error(api.patch("/proxies/nope", json={}), 404, "proxy not found")


def test_new_upstream_restarts_on_the_same_listen(
    api: httpx.Client, proxy: dict[str, object], echo: EchoServer, greeter: EchoServer
) -> None:
    old = connect(proxy["listen"])
    round_trip(old, b"old upstream")
    body = api.patch("/proxies/echo", json={"upstream": greeter.address}).json()
    assert body == {**proxy, "upstream": greeter.address}
    assert_closed(old)
    with connect(proxy["listen"]) as sock:
        assert recv_exactly(sock, 6) == b"hello\n"  # the greeter answers now


def test_disable_closes_connections_and_refuses_new_ones(
    api: httpx.Client, proxy: dict[str, object]
) -> None:
    sock = connect(proxy["listen"])
    round_trip(sock, b"up")
    assert api.patch("/proxies/echo", json={"enabled": False}).json()["enabled"] is False
    assert_closed(sock)
    with pytest.raises(ConnectionRefusedError):
        connect(proxy["listen"])
    assert api.patch("/proxies/echo", json={"enabled": True}).json()["listen"] == proxy["listen"]
    with connect(proxy["listen"]) as again:
        round_trip(again, b"back")


def test_unreachable_upstream_closes_the_client(api: httpx.Client) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))  # bound, never listening: connects are refused
        body = api.post(
            "/proxies", json={"name": "dead", "upstream": f"127.0.0.1:{unused.getsockname()[1]}"}
        )
        with connect(body.json()["listen"]) as sock:
            sock.settimeout(5)
            assert sock.recv(10) == b""


def test_toxic_crud_defaults_and_order(api: httpx.Client, proxy: dict[str, object]) -> None:
    created = api.post(
        "/proxies/echo/toxics", json={"type": "latency", "attributes": {"latency": 5, "x": 1}}
    )
    assert created.status_code == 200
    assert created.json() == {
        "name": "latency_downstream",
        "type": "latency",
        "stream": "downstream",
        "toxicity": 1.0,
        "attributes": {"latency": 5, "jitter": 0},
    }
    api.post("/proxies/echo/toxics", json={"type": "slicer", "stream": "upstream", "name": "s1"})
    api.post("/proxies/echo/toxics", json={"type": "bandwidth", "stream": "upstream", "name": "b1"})
    names = [t["name"] for t in api.get("/proxies/echo/toxics").json()]
    assert names == ["s1", "b1", "latency_downstream"]  # upstream chain first
    assert [t["name"] for t in api.get("/proxies/echo").json()["toxics"]] == names

    updated = api.patch(
        "/proxies/echo/toxics/latency_downstream",
        json={
            "attributes": {"jitter": 2},
            "toxicity": 0.5,
            "type": "timeout",
            "stream": "upstream",
        },
    )
    assert updated.json() == {
        **created.json(),
        "toxicity": 0.5,
        "attributes": {"latency": 5, "jitter": 2},
    }
    assert api.get("/proxies/echo/toxics/latency_downstream").json() == updated.json()

    error(
        api.post("/proxies/echo/toxics", json={"type": "slicer", "name": "s1"}),
        409,
        "toxic already exists",
    )
    error(api.post("/proxies/echo/toxics", json={"type": "nope"}), 400, "invalid toxic type")
    error(api.post("/proxies/echo/toxics", json={}), 400, "invalid toxic type")
    error(
        api.post("/proxies/echo/toxics", json={"type": "latency", "stream": "sideways"}),
        400,
        "stream was invalid, can be either upstream or downstream",
    )
    error(api.get("/proxies/echo/toxics/nope"), 404, "toxic not found")
    error(api.delete("/proxies/echo/toxics/nope"), 404, "toxic not found")
    error(api.get("/proxies/nope/toxics"), 404, "proxy not found")
    error(api.post("/proxies/nope/toxics", json={"type": "latency"}), 404, "proxy not found")
    assert api.delete("/proxies/echo/toxics/s1").status_code == 204
    assert [t["name"] for t in api.get("/proxies/echo/toxics").json()] == [
        "b1",
        "latency_downstream",
    ]


@pytest.mark.parametrize(
    "body",
    [
        {"type": "latency", "toxicity": "x"},
        {"type": "latency", "toxicity": 1.5},
        {"type": "latency", "attributes": 5},
        {"type": "latency", "attributes": {"latency": -1}},
        {"type": "bandwidth", "attributes": {"rate": -1}},
        {"type": "slicer", "attributes": {"average_size": -1}},
        {"type": "latency", "attributes": {"latency": 10**30}},
        {"type": "latency", "attributes": {"latency": "100"}},
        {"type": "latency", "attributes": {"latency": True}},
        {"type": "latency", "name": 7},
        [1, 2],
        "text",
    ],
)
def test_malformed_toxic_bodies_are_400(
    api: httpx.Client, proxy: dict[str, object], body: object
) -> None:
    response = api.post("/proxies/echo/toxics", json=body)
    assert response.status_code == 400
    assert response.json()["error"].startswith("bad request body: ")


def test_zero_bandwidth_means_unlimited(api: httpx.Client, proxy: dict[str, object]) -> None:
    response = api.post(
        "/proxies/echo/toxics", json={"type": "bandwidth", "attributes": {"rate": 0}}
    )
    assert response.status_code == 200
    with connect(proxy["listen"]) as sock:
        round_trip(sock, b"x" * 100_000)


def test_non_utf8_body_is_400(api: httpx.Client) -> None:
    response = api.post("/proxies", content=b'{"name": "\xff"}')
    assert response.status_code == 400
    assert response.json()["error"].startswith("bad request body: ")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "/proxies"),
        ("PUT", "/proxies/echo"),
        ("GET", "/populate"),
        ("GET", "/reset"),
        ("POST", "/version"),
        ("PUT", "/proxies/echo/toxics"),
        ("PUT", "/proxies/echo/toxics/t"),
    ],
)
def test_wrong_method_is_405_with_empty_body(api: httpx.Client, method: str, path: str) -> None:
    response = api.request(method, path)
    assert response.status_code == 405
    assert response.content == b""


def test_browsers_are_refused(api: httpx.Client) -> None:
    response = api.get("/proxies", headers={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64)"})
    assert response.status_code == 403
    assert api.get("/proxies", headers={"User-Agent": "curl/8"}).status_code == 200


def test_unknown_path_is_404(api: httpx.Client) -> None:
    assert api.get("/nothing/here").status_code == 404


def test_reset_enables_proxies_and_removes_toxics(
    api: httpx.Client, proxy: dict[str, object]
) -> None:
    api.post("/proxies/echo/toxics", json={"type": "latency", "attributes": {"latency": 1000}})
    api.patch("/proxies/echo", json={"enabled": False})
    response = api.post("/reset")
    assert response.status_code == 204 and response.content == b""
    after = api.get("/proxies/echo").json()
    assert after["enabled"] is True and after["toxics"] == []
    with connect(after["listen"]) as sock:
        assert round_trip(sock, b"fast again") < 0.5


def test_populate_keeps_unchanged_replaces_changed_and_never_deletes(
    api: httpx.Client, echo: EchoServer
) -> None:
    other = EchoServer()
    try:
        first = api.post(
            "/populate",
            json=[
                {"name": "keep", "upstream": echo.address},
                {"name": "move", "upstream": echo.address},
            ],
        )
        assert first.status_code == 201
        proxies = {p["name"]: p for p in first.json()["proxies"]}
        api.post("/proxies/keep/toxics", json={"type": "latency", "name": "slow"})
        api.post("/proxies/move/toxics", json={"type": "latency", "name": "slow"})
        api.post("/proxies", json={"name": "bystander", "upstream": echo.address})
        kept_conn = connect(proxies["keep"]["listen"])
        round_trip(kept_conn, b"hello")

        second = api.post(
            "/populate",
            json=[
                {"name": "keep", "listen": proxies["keep"]["listen"], "upstream": echo.address},
                {"name": "move", "listen": proxies["move"]["listen"], "upstream": other.address},
            ],
        )
        assert second.status_code == 201
        after = api.get("/proxies").json()
        assert set(after) == {"keep", "move", "bystander"}
        assert [t["name"] for t in after["keep"]["toxics"]] == ["slow"]
        assert after["move"]["toxics"] == [] and after["move"]["upstream"] == other.address
        assert after["move"]["listen"] == proxies["move"]["listen"]
        round_trip(kept_conn, b"still connected")
        kept_conn.close()
    finally:
        other.stop()


def test_populate_validates_every_entry_first(api: httpx.Client, echo: EchoServer) -> None:
    response = api.post(
        "/populate", json=[{"name": "ok", "upstream": echo.address}, {"name": "bad"}]
    )
    error(response, 400, "missing required field: upstream")
    assert api.get("/proxies").json() == {}
    assert api.post("/populate", json={"name": "x"}).status_code == 400


def test_metrics_parse_and_count_bytes(api: httpx.Client, proxy: dict[str, object]) -> None:
    api.post("/proxies/echo/toxics", json={"type": "slicer", "attributes": {"average_size": 10}})
    with connect(proxy["listen"]) as sock:
        round_trip(sock, b"m" * 1000)
        families = {f.name: f for f in text_string_to_metric_families(api.get("/metrics").text)}
    samples = {
        (s.name, s.labels.get("direction")): s.value
        for f in families.values()
        for s in f.samples
        if s.labels.get("proxy") == "echo"
    }
    for direction in ("upstream", "downstream"):
        assert samples[("toxiproxy_proxy_received_bytes_total", direction)] == 1000
        assert samples[("toxiproxy_proxy_sent_bytes_total", direction)] == 1000
    assert samples[("toxiproxy_proxy_open_connections", None)] == 1
    assert samples[("toxiproxy_proxy_active_toxics", None)] == 1

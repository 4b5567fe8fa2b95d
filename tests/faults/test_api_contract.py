"""Black-box contract of the Toxiproxy 2.x HTTP API (see shared toxiproxy-api.md).

Raw HTTP, so that status codes, body shapes and exact messages are checked as a client
written for the real server would see them.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from faults.client import ENV_URL
from faults.embedded import free_port, real_toxiproxy_server
from faults.toxic_types import TOXIC_ATTRIBUTES

PROXY_KEYS = {"name", "listen", "upstream", "enabled", "toxics"}
TOXIC_KEYS = {"name", "type", "stream", "toxicity", "attributes"}
LOGGER_LEAK = (
    'every proxy object carries its internal zerolog field as "Logger": {} '
    '(Proxy.Logger has no json:"-" tag)'
)
NO_RANGE_CHECKS = (
    "it checks no attribute or toxicity range and answers 200; some such values crash it "
    "once data flows (bandwidth rate -1: slice bounds panic; slicer average_size -1: "
    "stack overflow)"
)


@pytest.fixture
def api(target_url: str, request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
    """Raw HTTP to a server with no proxies, left with none."""
    with httpx.Client(base_url=target_url, timeout=5, trust_env=False) as http:
        _delete_all(http)
        try:
            yield http
        finally:
            try:
                _delete_all(http)
            except httpx.TransportError:
                # A real server that a real_toxiproxy_bug case crashed was this test's own.
                if request.node.callspec.params["target_url"] != "real":
                    raise


def _delete_all(http: httpx.Client) -> None:
    for name in http.get("/proxies").json():
        http.delete(f"/proxies/{name}")


def make_proxy(api: httpx.Client, upstream: str, name: str = "db", **extra: Any) -> dict[str, Any]:
    response = api.post(
        "/proxies", json={"name": name, "upstream": upstream, "listen": "127.0.0.1:0", **extra}
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def assert_error(response: httpx.Response, status: int, message: str) -> None:
    assert response.status_code == status, response.text
    assert response.json() == {"error": message, "status": status}


def connectable(listen: str) -> bool:
    host, port = listen.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


def echo_through(listen: str, payload: bytes) -> bytes:
    """What comes back through the proxy to an echo upstream (short if it stalls or dies)."""
    host, port = listen.rsplit(":", 1)
    received = b""
    try:
        with socket.create_connection((host, int(port)), timeout=3) as sock:
            sock.sendall(payload)
            while len(received) < len(payload):
                data = sock.recv(65536)
                if not data:
                    break
                received += data
    except OSError:
        pass  # a timeout or a reset: return what arrived
    return received


# -- server ------------------------------------------------------------------------------


def test_version_shape(api: httpx.Client) -> None:
    response = api.get("/version")
    assert response.status_code == 200
    assert response.text.endswith("\n")
    body = response.json()
    assert set(body) == {"version"} and isinstance(body["version"], str) and body["version"]


def test_browser_user_agent_is_refused(api: httpx.Client) -> None:
    response = api.get("/proxies", headers={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64)"})
    assert response.status_code == 403


@pytest.mark.parametrize(
    ("method", "path"),
    [("PUT", "/proxies"), ("GET", "/reset"), ("DELETE", "/version"), ("GET", "/populate")],
)
def test_known_path_wrong_method_is_405_with_empty_body(
    api: httpx.Client, method: str, path: str
) -> None:
    response = api.request(method, path)
    assert response.status_code == 405
    assert response.content == b""


def test_unknown_path_is_404(api: httpx.Client) -> None:
    assert api.get("/no/such/thing").status_code == 404


# -- proxies -----------------------------------------------------------------------------


def test_list_proxies_empty_then_by_name(api: httpx.Client, echo_upstream: str) -> None:
    empty = api.get("/proxies")
    assert (empty.status_code, empty.json()) == (200, {})
    created = make_proxy(api, echo_upstream)
    listed = api.get("/proxies").json()
    assert listed == {"db": created}


def test_create_proxy_shape_and_defaults(api: httpx.Client, echo_upstream: str) -> None:
    response = api.post("/proxies", json={"name": "db", "upstream": echo_upstream})
    assert response.status_code == 201
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) >= PROXY_KEYS
    assert (body["name"], body["upstream"], body["enabled"], body["toxics"]) == (
        "db",
        echo_upstream,
        True,
        [],
    )


@pytest.mark.real_toxiproxy_bug(LOGGER_LEAK)
@pytest.mark.parametrize("answer", ["create", "list", "get", "update", "populate"])
def test_proxy_objects_have_exactly_the_contract_keys(
    api: httpx.Client, echo_upstream: str, answer: str
) -> None:
    created = make_proxy(api, echo_upstream)
    entry = {"name": "db", "upstream": echo_upstream, "listen": created["listen"]}
    body = {
        "create": lambda: created,
        "list": lambda: api.get("/proxies").json()["db"],
        "get": lambda: api.get("/proxies/db").json(),
        "update": lambda: api.patch("/proxies/db", json={"enabled": False}).json(),
        "populate": lambda: api.post("/populate", json=[entry]).json()["proxies"][0],
    }[answer]()
    assert set(body) == PROXY_KEYS


def test_create_proxy_reports_bound_listen(api: httpx.Client, echo_upstream: str) -> None:
    body = api.post(
        "/proxies", json={"name": "db", "upstream": echo_upstream, "listen": "localhost:0"}
    ).json()
    host, port = body["listen"].rsplit(":", 1)
    assert host == "127.0.0.1" and int(port) > 0
    assert connectable(body["listen"])


def test_create_proxy_disabled_does_not_listen(api: httpx.Client, echo_upstream: str) -> None:
    listen = f"127.0.0.1:{free_port()}"
    body = make_proxy(api, echo_upstream, enabled=False, listen=listen)
    assert body["enabled"] is False
    assert not connectable(listen)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"upstream": "127.0.0.1:1"}, "missing required field: name"),
        ({"name": "db"}, "missing required field: upstream"),
    ],
)
def test_create_proxy_missing_field(api: httpx.Client, body: dict[str, Any], message: str) -> None:
    assert_error(api.post("/proxies", json=body), 400, message)


def test_create_proxy_bad_body(api: httpx.Client) -> None:
    response = api.post("/proxies", content=b"{not json")
    assert response.status_code == 400
    body = response.json()
    assert body["status"] == 400 and body["error"].startswith("bad request body: ")


def test_create_proxy_twice_is_409(api: httpx.Client, echo_upstream: str) -> None:
    make_proxy(api, echo_upstream)
    assert_error(
        api.post("/proxies", json={"name": "db", "upstream": echo_upstream}),
        409,
        "proxy already exists",
    )


def test_create_proxy_on_taken_port_is_500(api: httpx.Client, echo_upstream: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        listen = f"127.0.0.1:{taken.getsockname()[1]}"
        response = api.post(
            "/proxies", json={"name": "db", "upstream": echo_upstream, "listen": listen}
        )
    assert response.status_code == 500
    body = response.json()
    assert body["status"] == 500 and isinstance(body["error"], str) and body["error"]


def test_get_proxy(api: httpx.Client, echo_upstream: str) -> None:
    created = make_proxy(api, echo_upstream)
    response = api.get("/proxies/db")
    assert (response.status_code, response.json()) == (200, created)
    assert_error(api.get("/proxies/nope"), 404, "proxy not found")


@pytest.mark.parametrize("method", ["PATCH", "POST"])
def test_update_proxy_keeps_omitted_fields(
    api: httpx.Client, echo_upstream: str, method: str
) -> None:
    created = make_proxy(api, echo_upstream)
    response = api.request(method, "/proxies/db", json={"enabled": False})
    assert response.status_code == 200
    assert response.json() == {**created, "enabled": False}
    assert not connectable(created["listen"])
    enabled = api.request(method, "/proxies/db", json={"enabled": True}).json()
    assert enabled == created
    assert connectable(created["listen"])


def test_update_proxy_new_upstream(api: httpx.Client, echo_upstream: str) -> None:
    created = make_proxy(api, echo_upstream)
    body = api.patch("/proxies/db", json={"upstream": "127.0.0.1:1"}).json()
    assert body == {**created, "upstream": "127.0.0.1:1"}


def test_update_missing_proxy_is_404(api: httpx.Client) -> None:
    assert_error(api.patch("/proxies/nope", json={"enabled": False}), 404, "proxy not found")


def test_update_proxy_bad_body(api: httpx.Client, echo_upstream: str) -> None:
    make_proxy(api, echo_upstream)
    response = api.patch("/proxies/db", content=b"[oops")
    assert response.status_code == 400
    assert response.json()["error"].startswith("bad request body: ")


def test_disable_closes_open_connections(api: httpx.Client, echo_upstream: str) -> None:
    created = make_proxy(api, echo_upstream)
    host, port = created["listen"].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"hi")
        assert sock.recv(16) == b"hi"
        api.patch("/proxies/db", json={"enabled": False})
        sock.settimeout(2)
        try:
            sock.sendall(b"again")
            closed = sock.recv(16) == b""
        except TimeoutError:
            closed = False  # still open: the server kept the connection
        except OSError:
            closed = True  # reset by the server
        assert closed


def test_delete_proxy(api: httpx.Client, echo_upstream: str) -> None:
    created = make_proxy(api, echo_upstream)
    response = api.delete("/proxies/db")
    assert (response.status_code, response.content) == (204, b"")
    assert not connectable(created["listen"])
    assert_error(api.delete("/proxies/db"), 404, "proxy not found")


# -- populate ----------------------------------------------------------------------------


def test_populate_shape_and_idempotence(api: httpx.Client, echo_upstream: str) -> None:
    listen = f"127.0.0.1:{free_port()}"
    entries = [{"name": "db", "listen": listen, "upstream": echo_upstream}]
    response = api.post("/populate", json=entries)
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"proxies"} and len(body["proxies"]) == 1
    proxy = body["proxies"][0]
    assert set(proxy) >= PROXY_KEYS
    assert (proxy["name"], proxy["listen"], proxy["enabled"]) == ("db", listen, True)
    api.post("/proxies/db/toxics", json={"type": "latency", "attributes": {"latency": 1}})
    again = api.post("/populate", json=entries)
    assert again.status_code == 201
    assert [t["name"] for t in api.get("/proxies/db/toxics").json()] == ["latency_downstream"]


def test_populate_validates_everything_first(api: httpx.Client, echo_upstream: str) -> None:
    response = api.post(
        "/populate",
        json=[{"name": "ok", "listen": "127.0.0.1:0", "upstream": echo_upstream}, {"name": "x"}],
    )
    assert response.status_code == 400
    body = response.json()
    assert body["status"] == 400 and body["error"].startswith("missing required field")
    assert api.get("/proxies").json() == {}


def test_populate_takes_a_bare_array_only(api: httpx.Client, echo_upstream: str) -> None:
    entry = {"name": "db", "listen": "127.0.0.1:0", "upstream": echo_upstream}
    response = api.post("/populate", json={"proxies": [entry]})
    assert response.status_code == 400
    body = response.json()
    assert body["status"] == 400 and body["error"].startswith("bad request body: ")
    assert api.get("/proxies").json() == {}


def test_populate_bad_body(api: httpx.Client) -> None:
    response = api.post("/populate", content=b"nope")
    assert response.status_code == 400
    assert response.json()["error"].startswith("bad request body: ")


# -- toxics ------------------------------------------------------------------------------


def test_create_toxic_defaults_and_200(api: httpx.Client, echo_upstream: str) -> None:
    make_proxy(api, echo_upstream)
    response = api.post(
        "/proxies/db/toxics", json={"type": "latency", "attributes": {"latency": 100, "bogus": 1}}
    )
    assert response.status_code == 200
    toxic = response.json()
    assert set(toxic) == TOXIC_KEYS
    assert (toxic["name"], toxic["type"], toxic["stream"], toxic["toxicity"]) == (
        "latency_downstream",
        "latency",
        "downstream",
        1.0,
    )
    assert toxic["attributes"]["latency"] == 100
    assert "bogus" not in toxic["attributes"]
    assert api.get("/proxies/db").json()["toxics"] == [toxic]


def test_toxic_name_defaults_to_type_and_stream(api: httpx.Client, echo_upstream: str) -> None:
    make_proxy(api, echo_upstream)
    toxic = api.post("/proxies/db/toxics", json={"type": "timeout", "stream": "upstream"}).json()
    assert toxic["name"] == "timeout_upstream"


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"type": "nonsense"}, 400, "invalid toxic type"),
        (
            {"type": "latency", "stream": "sideways"},
            400,
            "stream was invalid, can be either upstream or downstream",
        ),
        ({"type": "latency"}, 409, "toxic already exists"),
    ],
)
def test_create_toxic_errors(
    api: httpx.Client, echo_upstream: str, body: dict[str, Any], status: int, message: str
) -> None:
    make_proxy(api, echo_upstream)
    api.post("/proxies/db/toxics", json={"type": "latency"})
    assert_error(api.post("/proxies/db/toxics", json=body), status, message)


OUT_OF_RANGE = [
    *[
        pytest.param({"type": kind, "attributes": {name: -1}}, name, id=f"{kind}-{name}=-1")
        for kind, names in TOXIC_ATTRIBUTES.items()
        for name in names
    ],
    pytest.param({"type": "latency", "toxicity": 1.5}, "toxicity", id="toxicity=1.5"),
    pytest.param({"type": "latency", "toxicity": -0.5}, "toxicity", id="toxicity=-0.5"),
]


@pytest.mark.real_toxiproxy_bug(NO_RANGE_CHECKS)
@pytest.mark.parametrize(("body", "field"), OUT_OF_RANGE)
def test_create_toxic_out_of_range_is_400(
    api: httpx.Client, echo_upstream: str, body: dict[str, Any], field: str
) -> None:
    """Every toxic alike: attributes are counts or durations (>= 0), toxicity a
    probability (0..1); anything else is refused with a message naming the field."""
    make_proxy(api, echo_upstream)
    response = api.post("/proxies/db/toxics", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error.startswith("bad request body: ") and field in error
    assert api.get("/proxies/db/toxics").json() == []


@pytest.mark.real_toxiproxy_bug(NO_RANGE_CHECKS)
@pytest.mark.parametrize(("body", "field"), OUT_OF_RANGE)
def test_update_toxic_out_of_range_is_400_and_changes_nothing(
    api: httpx.Client, echo_upstream: str, body: dict[str, Any], field: str
) -> None:
    make_proxy(api, echo_upstream)
    created = api.post("/proxies/db/toxics", json={"type": body["type"], "name": "t"}).json()
    update = {key: value for key, value in body.items() if key != "type"}
    response = api.patch("/proxies/db/toxics/t", json=update)
    assert response.status_code == 400, response.text
    assert field in response.json()["error"]
    assert api.get("/proxies/db/toxics/t").json() == created


@pytest.mark.real_toxiproxy_bug(
    "rate 0 stalls the link: its slicing loop sends p.Data[:0] every 100 ms forever, "
    "though its own `Rate <= 0` branch means no limit"
)
def test_bandwidth_rate_0_means_no_limit(api: httpx.Client, echo_upstream: str) -> None:
    created = make_proxy(api, echo_upstream)
    toxic = {"type": "bandwidth", "attributes": {"rate": 0}}
    assert api.post("/proxies/db/toxics", json=toxic).status_code == 200
    assert echo_through(created["listen"], b"x" * 10_000) == b"x" * 10_000


@pytest.mark.real_toxiproxy_bug(
    "a slicer with average_size 0 (the default) recurses until the stack overflows, "
    "and the whole server exits"
)
def test_slicer_with_default_attributes_forwards(api: httpx.Client, echo_upstream: str) -> None:
    created = make_proxy(api, echo_upstream)
    assert api.post("/proxies/db/toxics", json={"type": "slicer"}).status_code == 200
    assert echo_through(created["listen"], b"hello") == b"hello"
    assert api.get("/version").status_code == 200


def test_create_toxic_bad_body(api: httpx.Client, echo_upstream: str) -> None:
    make_proxy(api, echo_upstream)
    response = api.post("/proxies/db/toxics", content=b"{{")
    assert response.status_code == 400
    assert response.json()["error"].startswith("bad request body: ")


def test_toxics_of_missing_proxy_are_404(api: httpx.Client) -> None:
    assert_error(api.get("/proxies/nope/toxics"), 404, "proxy not found")
    assert_error(api.post("/proxies/nope/toxics", json={"type": "latency"}), 404, "proxy not found")
    assert_error(api.get("/proxies/nope/toxics/t"), 404, "proxy not found")


def test_toxic_list_is_upstream_first_then_insertion_order(
    api: httpx.Client, echo_upstream: str
) -> None:
    make_proxy(api, echo_upstream)
    for name, stream in [
        ("d1", "downstream"),
        ("u1", "upstream"),
        ("d2", "downstream"),
        ("u2", "upstream"),
    ]:
        created = api.post(
            "/proxies/db/toxics", json={"name": name, "type": "latency", "stream": stream}
        )
        assert created.status_code == 200, created.text
    response = api.get("/proxies/db/toxics")
    assert response.status_code == 200
    assert [t["name"] for t in response.json()] == ["u1", "u2", "d1", "d2"]


def test_get_toxic(api: httpx.Client, echo_upstream: str) -> None:
    make_proxy(api, echo_upstream)
    created = api.post("/proxies/db/toxics", json={"type": "latency"}).json()
    response = api.get("/proxies/db/toxics/latency_downstream")
    assert (response.status_code, response.json()) == (200, created)
    assert_error(api.get("/proxies/db/toxics/nope"), 404, "toxic not found")


@pytest.mark.parametrize("method", ["PATCH", "POST"])
def test_update_toxic_merges_attributes_and_ignores_type_and_stream(
    api: httpx.Client, echo_upstream: str, method: str
) -> None:
    make_proxy(api, echo_upstream)
    api.post("/proxies/db/toxics", json={"type": "latency", "attributes": {"latency": 100}})
    response = api.request(
        method,
        "/proxies/db/toxics/latency_downstream",
        json={
            "type": "bandwidth",
            "stream": "upstream",
            "toxicity": 0.5,
            "attributes": {"jitter": 7},
        },
    )
    assert response.status_code == 200, response.text
    toxic = response.json()
    assert (toxic["type"], toxic["stream"], toxic["toxicity"]) == ("latency", "downstream", 0.5)
    assert (toxic["attributes"]["latency"], toxic["attributes"]["jitter"]) == (100, 7)
    assert api.get("/proxies/db/toxics/latency_downstream").json() == toxic


def test_update_missing_toxic_is_404(api: httpx.Client, echo_upstream: str) -> None:
    make_proxy(api, echo_upstream)
    assert_error(
        api.patch("/proxies/db/toxics/nope", json={"toxicity": 0.5}), 404, "toxic not found"
    )


def test_delete_toxic(api: httpx.Client, echo_upstream: str) -> None:
    make_proxy(api, echo_upstream)
    api.post("/proxies/db/toxics", json={"type": "latency"})
    response = api.delete("/proxies/db/toxics/latency_downstream")
    assert (response.status_code, response.content) == (204, b"")
    assert api.get("/proxies/db/toxics").json() == []
    assert_error(api.delete("/proxies/db/toxics/latency_downstream"), 404, "toxic not found")


# -- reset -------------------------------------------------------------------------------


def test_reset_enables_all_and_removes_all_toxics(api: httpx.Client, echo_upstream: str) -> None:
    a = make_proxy(api, echo_upstream, name="a", enabled=False)
    make_proxy(api, echo_upstream, name="b")
    api.post("/proxies/b/toxics", json={"type": "latency", "attributes": {"latency": 1}})
    api.post("/proxies/b/toxics", json={"type": "timeout", "stream": "upstream"})
    response = api.post("/reset")
    assert (response.status_code, response.content) == (204, b"")
    proxies = api.get("/proxies").json()
    assert set(proxies) == {"a", "b"}
    assert all(p["enabled"] is True and p["toxics"] == [] for p in proxies.values())
    assert connectable(proxies["a"]["listen"])
    assert a["upstream"] == proxies["a"]["upstream"]


def test_metrics_is_prometheus_text(target_url: str, request: pytest.FixtureRequest) -> None:
    with contextlib.ExitStack() as stack:
        if request.node.callspec.params["target_url"] == "real":
            if os.environ.get(ENV_URL):
                pytest.skip(f"${ENV_URL} names a real server started without metrics flags")
            # The real server serves /metrics only when started with a metrics flag.
            target_url = stack.enter_context(real_toxiproxy_server(args=["-runtime-metrics"]))
        response = httpx.get(f"{target_url}/metrics", timeout=5, trust_env=False)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "# TYPE" in response.text

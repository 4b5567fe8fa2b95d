"""Malformed input anywhere in the API: always a 4xx with the error shape, never a 500."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.faults.server.conftest import EchoServer, FaultServer

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = ["name", "listen", "upstream", "enabled", "type", "stream", "toxicity", "attributes"]
ATTRIBUTES = ["latency", "jitter", "rate", "delay", "timeout", "bytes", "average_size"]
field_values = st.one_of(
    json_values,
    st.dictionaries(st.sampled_from(ATTRIBUTES), json_values, max_size=3),
    st.sampled_from(["latency", "timeout", "slicer", "upstream", "downstream", "127.0.0.1:0"]),
)
bodies = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(st.sampled_from(FIELDS), field_values, max_size=5).map(
        lambda v: json.dumps(v).encode()
    ),
    st.binary(max_size=40),
)
ENDPOINTS = [
    ("POST", "/proxies"),
    ("POST", "/populate"),
    ("POST", "/proxies/fz"),
    ("PATCH", "/proxies/fz"),
    ("POST", "/proxies/fz/toxics"),
    ("POST", "/proxies/fz/toxics/t"),
    ("PATCH", "/proxies/fz/toxics/t"),
    ("GET", "/proxies/fz/toxics/t"),
    ("DELETE", "/proxies/zz"),
]


@pytest.fixture(scope="module")
def client(fault_server: FaultServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fault_server.url, timeout=10) as api:
        yield api


def check(response: httpx.Response) -> None:
    if response.status_code == 500:
        # The one legitimate 500 (as in Toxiproxy): a generated listen address cannot be bound.
        assert response.json()["error"].startswith("listen tcp "), response.text
        return
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error", "status"} and body["status"] == response.status_code


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(endpoint=st.sampled_from(ENDPOINTS), body=bodies)
def test_random_bodies_never_break_the_server(
    client: httpx.Client, echo: EchoServer, endpoint: tuple[str, str], body: bytes
) -> None:
    if client.get("/proxies/fz").status_code == 404:
        client.post("/proxies", json={"name": "fz", "upstream": echo.address})
    if client.get("/proxies/fz/toxics/t").status_code == 404:
        client.post("/proxies/fz/toxics", json={"type": "latency", "name": "t"})
    method, path = endpoint
    check(client.request(method, path, content=body))
    assert client.get("/version").status_code == 200
    for name in client.get("/proxies").json():
        if name != "fz":
            client.delete(f"/proxies/{name}")


def test_server_is_clean_after_fuzzing(fault_server: FaultServer) -> None:
    with httpx.Client(base_url=fault_server.url, timeout=10) as api:
        api.delete("/proxies/fz")
        assert api.get("/proxies").json() == {}

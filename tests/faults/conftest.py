"""Fixtures for the fault layer's tests: real servers on free loopback ports, no mocks.

Client and compatibility tests run against every available target: always the embedded
server; also a real `toxiproxy-server` when it is on PATH or $TOXIPROXY_URL names one.
A server named by $TOXIPROXY_URL must be a scratch one: the tests delete all its proxies.

A case where the real server is known to break the contract carries
`@pytest.mark.real_toxiproxy_bug("why")`: on the real target it is a strict xfail, so it
turns red once the real server is fixed; on the embedded server it is a plain test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from faults.client import ENV_URL, FaultClient
from faults.demo import echo_server
from faults.embedded import embedded_fault_server, real_toxiproxy_server, toxiproxy_server_binary


@pytest.fixture(scope="session")
def embedded_url() -> Iterator[str]:
    with embedded_fault_server() as url:
        yield url


@pytest.fixture
def real_url() -> Iterator[str]:
    """A fresh real server for each test: it checks no attribute ranges and some accepted
    values crash it (bandwidth rate -1, slicer average_size 0), so a case that kills or
    wedges it must not take every later case down too."""
    external = os.environ.get(ENV_URL)
    if external:
        yield external
        return
    if toxiproxy_server_binary() is None:
        pytest.skip(f"no real toxiproxy-server: not on PATH and ${ENV_URL} is not set")
    with real_toxiproxy_server() as url:
        yield url


@pytest.fixture(params=["embedded", pytest.param("real", marks=pytest.mark.real_toxiproxy)])
def target_url(request: pytest.FixtureRequest) -> str:
    """Base URL of the server under test, once per target."""
    name = "embedded_url" if request.param == "embedded" else "real_url"
    return str(request.getfixturevalue(name))


@pytest.fixture
def fault_client(target_url: str) -> Iterator[FaultClient]:
    """A client on a clean server; every proxy it leaves behind is deleted."""
    with FaultClient(target_url) as client:
        _clean(client)
        try:
            yield client
        finally:
            _clean(client)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        bug = item.get_closest_marker("real_toxiproxy_bug")
        callspec = getattr(item, "callspec", None)
        if bug is None or callspec is None or callspec.params.get("target_url") != "real":
            continue
        reason = f"real toxiproxy-server bug: {bug.args[0]}"
        item.add_marker(pytest.mark.xfail(strict=True, reason=reason))


def _clean(client: FaultClient) -> None:
    for name in client.proxies():
        client.delete_proxy(name)


@pytest.fixture(scope="session")
def echo_upstream() -> Iterator[str]:
    """ "host:port" of an echo service on loopback, the upstream of test proxies."""
    with echo_server() as address:
        yield address

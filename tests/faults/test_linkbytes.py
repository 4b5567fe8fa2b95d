"""Bytes per link from the fault server's /metrics: parsed, and measured on real traffic."""

from __future__ import annotations

import socket
import time

from faults.client import FaultClient
from faults.embedded import embedded_fault_server
from faults.linkbytes import difference, parse_metrics, total

PAGE = """# HELP toxiproxy_proxy_received_bytes_total Bytes read from the source, per direction
# TYPE toxiproxy_proxy_received_bytes_total counter
toxiproxy_proxy_received_bytes_total{direction="upstream",proxy="pg"} 120.0
toxiproxy_proxy_received_bytes_total{direction="downstream",proxy="pg"} 3.0
# HELP toxiproxy_proxy_sent_bytes_total Bytes written to the destination, per direction
# TYPE toxiproxy_proxy_sent_bytes_total counter
toxiproxy_proxy_sent_bytes_total{direction="upstream",proxy="pg"} 99.0
"""


def test_received_bytes_per_proxy_and_direction_are_parsed() -> None:
    assert parse_metrics(PAGE) == {"pg": {"upstream": 120, "downstream": 3}}


def test_differences_count_new_links_and_restarted_counters_from_zero() -> None:
    before = {"pg": {"upstream": 100, "downstream": 50}}
    after = {"pg": {"upstream": 150, "downstream": 20}, "redis": {"upstream": 7}}
    assert difference(after, before) == {
        "pg": {"upstream": 50, "downstream": 20},
        "redis": {"upstream": 7},
    }
    assert total({"upstream": 50, "downstream": 20}) == 70 and total(None) == 0


def test_the_fault_server_counts_what_crossed_a_link() -> None:
    """Real bytes through a real proxy to a real echo listener."""
    echo = socket.create_server(("127.0.0.1", 0))
    port = echo.getsockname()[1]
    with embedded_fault_server() as url, FaultClient(url) as client:
        proxy = client.populate([{"name": "echo", "upstream": f"127.0.0.1:{port}"}])[0]
        before = client.link_bytes()
        with socket.create_connection((proxy.listen_host, proxy.listen_port), timeout=5) as c:
            peer, _ = echo.accept()
            with peer:
                c.sendall(b"x" * 1000)
                got = b""
                while len(got) < 1000:
                    got += peer.recv(4096)
                peer.sendall(b"y" * 10)
                assert c.recv(10)
        # The forwarder may count a chunk just after writing it: read until it settles.
        for _ in range(50):
            carried = difference(client.link_bytes(), before)["echo"]
            if carried == {"upstream": 1000, "downstream": 10}:
                break
            time.sleep(0.05)
    echo.close()
    assert carried == {"upstream": 1000, "downstream": 10}

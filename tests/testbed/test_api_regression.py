"""The regression switch: ARCHIVIST_REGRESSION=slow-list makes listing clearly slower,
=no-cache makes reads skip Redis, and /api/health says which one is on."""

from __future__ import annotations

import statistics
import time

from testbed.api.client import ArchivistClient
from testbed.stack import Stack

ROUNDS = 25


def median_list_ms(api: ArchivistClient) -> float:
    samples = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        response = api.request("GET", "/api/vods", params={"limit": "50"})
        samples.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200
    return statistics.median(samples)


def test_slow_list_makes_listing_at_least_twice_as_slow(clean_faults: Stack) -> None:
    stack = clean_faults
    with ArchivistClient(stack.api_url, timeout=30) as api:
        api.login()
        for n in range(60):  # enough rows that a per-item query shows
            api.create_vod(title=f"regression row {n}")
        median_list_ms(api)  # warm-up
        normal = median_list_ms(api)
    stack.restart("api", env={"ARCHIVIST_REGRESSION": "slow-list"})
    with ArchivistClient(stack.api_url, timeout=30) as api:
        api.login()
        assert api.http.get("/api/health").json()["regression"] == "slow-list"
        median_list_ms(api)
        slow = median_list_ms(api)
    print(f"list median: normal {normal:.1f} ms, slow-list {slow:.1f} ms")
    assert slow >= 2 * normal, f"slow-list {slow:.1f} ms vs normal {normal:.1f} ms"


def test_no_cache_reads_skip_redis(clean_faults: Stack) -> None:
    stack = clean_faults
    stack.restart("api", env={"ARCHIVIST_REGRESSION": "no-cache"})
    with ArchivistClient(stack.api_url, timeout=30) as api:
        api.login()
        assert api.http.get("/api/health").json()["regression"] == "no-cache"
        vod = api.create_vod()
        for _ in range(3):
            response = api.request("GET", f"/api/vods/{vod['id']}")
            assert response.status_code == 200 and response.headers["X-Cache"] == "miss"

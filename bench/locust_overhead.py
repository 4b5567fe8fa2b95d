"""What the workload plumbing costs: the VOD user vs a bare FastHttpUser, same trivial server.

Four users run in this process, one after the other in interleaved rounds:

- `bare`: the VOD user's request mix (same weights, same body size), plain FastHttpUser calls;
- `checked`: the same plus Locust's own catch_response, the floor of any status check;
- `bare+jar`: bare with the VOD user's quick cookie jar, so the jar's saving is shown apart;
- `vod`: the real VodEditor with all its plumbing (client, auth, naming, checks, ledger),

against a tiny local HTTP server (a child process) that answers every route with a
minimal valid JSON body. The figures are requests per wall-clock second and requests per
CPU-second of this process (the latter is robust to the other processes sharing the
machine and to the server's own speed); medians over the rounds. Target: the plumbing
costs <= 10 % of a bare user's throughput.

The server is a raw asyncio protocol (uvloop when available) rather than uvicorn: without
httptools, uvicorn's h11 parser is slower than one Locust process, and the benchmark would
measure the server instead of Locust.

    .venv/bin/python bench/locust_overhead.py [--rounds 5] [--seconds 4] [--users 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

VOD = {
    "id": 1,
    "version": 1,
    "status": "published",
    "title": "t",
    "cablecast_show_id": 1,
    "cablecast_vod_id": 1,
}
TOKENS = {"access_token": "t", "refresh_token": "r", "token_type": "bearer", "expires_in": 3600}


def answer(method: str, path: str) -> tuple[int, bytes]:
    """The minimal valid answer of the contract for a route (no state)."""
    path = path.split("?", 1)[0]
    if path.startswith("/api/auth/login"):
        return 200, json.dumps(TOKENS).encode()
    if path.startswith("/CablecastAPI"):
        return 200, json.dumps({"vod": {"id": 1, "show": 1}}).encode()
    if path.endswith("/process"):
        return 202, b'{"job_id": "j"}'
    if path.startswith("/api/vods/"):
        return {"DELETE": (204, b"")}.get(method, (200, json.dumps(VOD).encode()))
    if path == "/api/vods":
        if method == "POST":
            return 201, json.dumps(VOD).encode()
        return 200, b'{"items": [], "next_cursor": null}'
    return 200, b'{"status": "ok", "shows": []}'


class Trivial(asyncio.Protocol):
    """HTTP/1.1 keep-alive, one request at a time per connection, bodies skipped."""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = self.buffer[:end].decode("latin-1").split("\r\n")
            length = 0
            for line in head[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            method, path, _ = head[0].split(" ", 2)
            status, body = answer(method, path)
            self.transport.write(
                f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )


async def serve() -> None:
    server = await asyncio.get_running_loop().create_server(Trivial, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


def start_server() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    port = proc.stdout.readline().strip()
    if not port.isdigit():
        proc.kill()
        raise SystemExit("error: the trivial server did not start")
    return proc, f"http://127.0.0.1:{port}"


def measure(user_class: Any, host: str, users: int, seconds: float) -> tuple[float, float]:
    """(requests per wall second, requests per CPU second) of one round."""
    import gevent
    from locust import events
    from locust.argument_parser import get_parser
    from locust.env import Environment
    from locust.event import EventHook

    counted = [0]

    def count(request_type: str, **_: Any) -> None:
        if request_type != "WORKFLOW":
            counted[0] += 1

    # Each round's runner adds its stats listener to the shared hooks; restoring the hooks
    # afterwards keeps later rounds from paying for every earlier round's listeners.
    saved = {k: list(h._handlers) for k, h in vars(events).items() if isinstance(h, EventHook)}
    opts = get_parser().parse_args(["--host", host, "--cablecast-url", f"{host}/CablecastAPI/v1"])
    env = Environment(user_classes=[user_class], events=events, host=host, parsed_options=opts)
    runner = env.create_local_runner()
    events.init.fire(environment=env, runner=runner, web_ui=None)
    events.request.add_listener(count)
    try:
        runner.start(users, spawn_rate=users * 10)
        gevent.sleep(1.0)  # let every user log in and settle
        counted[0] = 0
        wall, cpu = time.perf_counter(), time.process_time()
        gevent.sleep(seconds)
        n, wall, cpu = counted[0], time.perf_counter() - wall, time.process_time() - cpu
    finally:
        runner.quit()
        events.quitting.fire(environment=env, reason="round over")
        for name, handlers in saved.items():
            getattr(events, name)._handlers = handlers
    return n / wall, n / max(cpu, 1e-9)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        try:
            import uvloop

            uvloop.install()
        except ImportError:
            pass
        asyncio.run(serve())
        return 0
    if args.rounds < 1 or args.seconds <= 0 or args.users < 1:
        parser.error("--rounds, --seconds and --users must be positive")

    # Results of the rounds land in a throw-away run folder, not in runs/.
    os.environ.setdefault("LOADKIT_RUN_DIR", tempfile.mkdtemp(prefix="locust-overhead-"))
    from locust import FastHttpUser, constant, task

    from locustfiles.vod import VodEditor
    from workload import cookies
    from workload.fakes import fake_vod

    class Bare(FastHttpUser):
        """The same requests as the VOD user, same weights, with none of the plumbing."""

        wait_time = constant(0)
        body = fake_vod(random.Random(1))  # same size of body as the VOD user's, made once

        def call(self, method: str, url: str, **kw: Any) -> None:
            self.client.request(method, url, **kw)

        def on_start(self) -> None:
            self.call("POST", "/api/auth/login", json={"username": "u", "password": "p"})

        @task(6)
        def browse_and_search(self) -> None:
            self.call("GET", "/api/vods?limit=20")

        @task(6)
        def open_vod(self) -> None:
            self.call("GET", "/api/vods/1")

        @task(2)
        def create(self) -> None:
            self.call("POST", "/api/vods", json=self.body, headers={"Idempotency-Key": "k"})

        @task(2)
        def edit(self) -> None:
            self.call("PATCH", "/api/vods/1", json={"title": "u"}, headers={"If-Match": "1"})

        @task(1)
        def delete(self) -> None:
            self.call("DELETE", "/api/vods/1")

        @task(1)
        def publish(self) -> None:
            self.call("POST", "/api/vods", json=self.body, headers={"Idempotency-Key": "k"})
            self.call("POST", "/api/vods/1/process")
            self.call("GET", "/api/vods/1")
            self.call("GET", f"{self.host}/CablecastAPI/v1/vods/1")

        @task(2)
        def shows_and_health(self) -> None:
            self.call("GET", "/api/shows?q=a")

    class Checked(Bare):
        """Bare plus Locust's own catch_response: the floor of any per-request status check."""

        def call(self, method: str, url: str, **kw: Any) -> None:
            with self.client.request(method, url, catch_response=True, **kw) as resp:
                resp.success()

    class BareQuickJar(Bare):
        """Bare with the VOD user's cookie jar: the like-for-like cost of the rest."""

        def __init__(self, environment: Any) -> None:
            super().__init__(environment)
            cookies.install(self.client)

    class Vod(VodEditor):
        wait_time = constant(0)

    server, host = start_server()
    order = [("bare", Bare), ("checked", Checked), ("bare+jar", BareQuickJar), ("vod", Vod)]
    results: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in order}
    try:
        for i in range(args.rounds):
            for name, cls in order if i % 2 == 0 else order[::-1]:
                results[name].append(measure(cls, host, args.users, args.seconds))
    finally:
        server.kill()
        server.wait()
    med = {
        k: (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v))
        for k, v in results.items()
    }
    print(
        f"{'user':<6} {'req/s (wall)':>14} {'req per CPU-s':>14}   ({args.rounds} rounds, medians)"
    )
    for name, (wall, cpu) in med.items():
        print(f"{name:<8} {wall:>14.0f} {cpu:>14.0f}")
    ratio_wall, ratio_cpu = med["vod"][0] / med["bare"][0], med["vod"][1] / med["bare"][1]
    print(f"ratio vod/bare: {ratio_wall:.3f} (wall), {ratio_cpu:.3f} (CPU)")
    cost = 1 - ratio_cpu
    floor = 1 - med["checked"][1] / med["bare"][1]
    verdict = "OK" if cost <= 0.10 else "OVER TARGET"
    print(
        f"VOD user vs a bare FastHttpUser, CPU per request: {cost:.1%} dearer"
        f"  (target <= 10%: {verdict})"
    )
    print(f"  of which Locust's catch_response alone (checked vs bare): {floor:.1%}")
    like = 1 - med["vod"][1] / med["bare+jar"][1]
    saved = med["bare+jar"][1] / med["bare"][1] - 1
    print(
        f"  the VOD user's cookie jar (workload/cookies.py) makes a bare user {saved:.1%}"
        f" faster; against a bare user with that jar the rest costs {like:.1%}"
    )
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    raise SystemExit(main())

"""What the embedded fault server costs on the wire, next to a direct connection.

    python bench/proxy.py [--quick] [--rounds N] [--client lean|streams] [--busy-poll USEC]
                          [--reference]

An echo service runs in its own process, and so do the concurrent and bulk clients, so
nothing shares a GIL with the proxy or the echo. The default ``lean`` client and echo are
uvloop protocols, cheap peers next to which the proxy's share of the CPU shows most;
``streams`` uses plain asyncio streams, as most Python programs do. Targets are measured
round by round (direct, embedded, real, direct, ...) and medians are reported, because
a shared machine drifts; ratios and added latency are medians of per-round pairs.
Exit code 0 whatever the figures: this is a measurement; the PASS/MISS lines say how
the figures compare with the targets.

The embedded server is measured as it starts by default, and again with busy polling
(``--busy-poll``, opt-in; column ``busy-poll``) unless ``--busy-poll 0``: on a virtual
machine most of a round trip is spent waking sleeping cores up, which polling avoids.

``--reference`` adds a Toxiproxy-shaped proxy written in Go (bench/reference: built with
``go`` from PATH), for scale where no real ``toxiproxy-server`` is installed: it forwards
the way Toxiproxy does with no toxic, and does less, so it is an upper bound on a real one.

The messages/s test also counts each process's CPU per round trip. On a machine whose
cores are all busy with client, echo and proxy, a proxy that spends P us per round trip
keeps at most (C + E) / (C + E + P) of direct messages/s, C and E being what the client
and the echo spend direct; the report prints that bound next to the measured ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import multiprocessing as mp
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from multiprocessing.pool import Pool
from pathlib import Path
from typing import cast

import psutil

from faults.client import FaultClient
from faults.embedded import (
    embedded_fault_server,
    real_toxiproxy_server,
    stop_process,
    toxiproxy_server_binary,
)
from faults.server import native

# The targets the embedded server is held to (see the fault server's task).
MAX_ADDED_P50_US = 25.0
MIN_MSGS_RATIO = 0.85
MIN_BULK_RATIO = 0.85

PING = b"p" * 64
CONNECTIONS = 64
IO_TIMEOUT = 10.0  # s: any single socket operation slower than this is a failure
CLIENTS = ("lean", "streams")  # how the echo and the messages/s client are written
REFERENCE_SOURCE = Path(__file__).parent / "reference"
DEFAULT_BUSY_POLL_US = 100  # long enough to catch an echo's answer on this machine


@dataclass(frozen=True)
class Settings:
    rounds: int
    samples: int  # ping-pongs per round for the latency percentiles
    duration: float  # s of concurrent ping-pong per round
    bulk_mib: int  # MiB sent, and echoed back, per round
    client: str = "lean"  # one of CLIENTS


FULL = Settings(rounds=6, samples=5000, duration=2.0, bulk_mib=256)
QUICK = Settings(rounds=2, samples=500, duration=0.5, bulk_mib=4)


# -- echo service (its own process) -----------------------------------------------------


class _EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


async def _echo_stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


def _echo_main(ports: mp.Queue[int], client: str) -> None:
    if client == "lean":
        _use_uvloop()

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        if client == "lean":
            server = await loop.create_server(_EchoProtocol, "127.0.0.1", 0)
        else:
            server = await asyncio.start_server(_echo_stream, "127.0.0.1", 0)
        ports.put(server.sockets[0].getsockname()[1])
        await asyncio.Event().wait()  # until the parent terminates us

    asyncio.run(serve())


@contextmanager
def echo_process(client: str = "lean") -> Iterator[tuple[str, int]]:
    """The echo service's address and process id."""
    ctx = mp.get_context("spawn")
    ports: mp.Queue[int] = ctx.Queue()
    process = ctx.Process(target=_echo_main, args=(ports, client), daemon=True)
    process.start()
    assert process.pid is not None
    try:
        yield f"127.0.0.1:{ports.get(timeout=30)}", process.pid
    finally:
        process.terminate()
        process.join(5)
        if process.is_alive():
            process.kill()
            process.join(5)


def _use_uvloop() -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # uvloop is optional on platforms without it
        pass


# -- measurements -----------------------------------------------------------------------


def _split(address: str) -> tuple[str, int]:
    host, port = address.rsplit(":", 1)
    return host, int(port)


def _connect(address: str) -> socket.socket:
    sock = socket.create_connection(_split(address), timeout=IO_TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _recv_exactly(sock: socket.socket, size: int) -> None:
    view = memoryview(bytearray(size))
    got = 0
    while got < size:
        n = sock.recv_into(view[got:])
        if n == 0:
            raise ConnectionError("connection closed during the benchmark")
        got += n


def round_trips_us(address: str, samples: int) -> list[float]:
    """Latency of `samples` 64-byte ping-pongs on one blocking connection, in us."""
    times = []
    with _connect(address) as sock:
        for _ in range(50):  # warm the path up; not measured
            sock.sendall(PING)
            _recv_exactly(sock, len(PING))
        clock = time.perf_counter_ns
        for _ in range(samples):
            start = clock()
            sock.sendall(PING)
            _recv_exactly(sock, len(PING))
            times.append((clock() - start) / 1000)
    return times


class _PingPong(asyncio.Protocol):
    """One connection that sends the next ping as soon as the previous pong is back."""

    def __init__(self, deadline: float, done: asyncio.Future[None]) -> None:
        self.deadline = deadline
        self.done = done
        self.count = 0
        self.pending = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def start(self) -> None:
        self.transport.write(PING)

    def data_received(self, data: bytes) -> None:
        self.pending += len(data)
        while self.pending >= len(PING):
            self.pending -= len(PING)
            self.count += 1
            if time.monotonic() < self.deadline:
                self.transport.write(PING)
            elif not self.done.done():
                self.done.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(exc or ConnectionError("connection closed early"))


def messages_per_s(address: str, connections: int, duration: float, client: str) -> float:
    """Round trips per second over `connections` concurrent ping-pong connections."""
    if client == "streams":
        return asyncio.run(_streams_messages_per_s(address, connections, duration))
    _use_uvloop()

    async def run() -> float:
        loop = asyncio.get_running_loop()
        host, port = _split(address)
        deadline = time.monotonic() + 3600  # set properly once all are connected
        links: list[_PingPong] = []
        for _ in range(connections):
            done: asyncio.Future[None] = loop.create_future()
            _, protocol = await loop.create_connection(
                functools.partial(_PingPong, deadline, done), host, port
            )
            links.append(protocol)
        start = time.monotonic()
        for link in links:
            link.deadline = start + duration
            link.start()
        await asyncio.wait_for(
            asyncio.gather(*(link.done for link in links)), duration + IO_TIMEOUT
        )
        elapsed = time.monotonic() - start
        for link in links:
            link.transport.close()
        return sum(link.count for link in links) / elapsed

    return asyncio.run(run())


async def _streams_messages_per_s(address: str, connections: int, duration: float) -> float:
    """`messages_per_s` written as most asyncio programs are: streams, write, drain, read."""
    host, port = _split(address)
    streams = [await asyncio.open_connection(host, port) for _ in range(connections)]
    for _, writer in streams:
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    deadline = time.monotonic() + duration

    async def ping_pong(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> int:
        count = 0
        while time.monotonic() < deadline:
            writer.write(PING)
            await writer.drain()
            await reader.readexactly(len(PING))
            count += 1
        writer.close()
        return count

    start = time.monotonic()
    counts = await asyncio.wait_for(
        asyncio.gather(*(ping_pong(r, w) for r, w in streams)), duration + IO_TIMEOUT
    )
    return sum(counts) / (time.monotonic() - start)


def bulk_mb_per_s(address: str, mib: int) -> float:
    """MB/s each way: `mib` MiB are sent while the echo of them is read back."""
    total = mib * 1024 * 1024
    chunk = b"b" * (256 * 1024)
    with _connect(address) as sock:

        def send() -> None:
            sent = 0
            while sent < total:
                sock.sendall(chunk[: total - sent])
                sent += min(len(chunk), total - sent)

        sender = threading.Thread(target=send, daemon=True)
        start = time.perf_counter()
        sender.start()
        buffer = memoryview(bytearray(1024 * 1024))
        got = 0
        while got < total:
            n = sock.recv_into(buffer)
            if n == 0:
                raise ConnectionError("connection closed during the bulk transfer")
            got += n
        elapsed = time.perf_counter() - start
        sender.join(IO_TIMEOUT)
    return total / elapsed / 1e6


# -- running and reporting --------------------------------------------------------------


@dataclass
class Figures:
    p50_us: list[float]
    p99_us: list[float]
    msgs: list[float]
    bulk: list[float]
    # CPU us per round trip in the messages/s test, by process: client, echo, proxy
    cpu_us: dict[str, list[float]] = field(default_factory=dict)


def _cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def measure(
    targets: dict[str, str], settings: Settings, pool: Pool, pids: dict[str, int]
) -> dict[str, Figures]:
    """`pids`: the processes whose CPU the messages/s test counts (client, echo, and each
    proxy server under its target's name)."""
    figures = {name: Figures([], [], [], []) for name in targets}
    for round_no in range(1, settings.rounds + 1):
        for name, address in targets.items():
            times = sorted(round_trips_us(address, settings.samples))
            f = figures[name]
            f.p50_us.append(statistics.median(times))
            f.p99_us.append(times[min(len(times) - 1, int(len(times) * 0.99))])
            roles = {"client": pids["client"], "echo": pids["echo"]}
            if name in pids:
                roles["proxy"] = pids[name]
            processes = {role: psutil.Process(pid) for role, pid in roles.items()}
            before = {role: _cpu_s(p) for role, p in processes.items()}
            rate = pool.apply(
                messages_per_s, (address, CONNECTIONS, settings.duration, settings.client)
            )
            # The CPU counted includes the 64 connections' set-up: a slight overestimate.
            trips = rate * settings.duration
            f.msgs.append(rate)
            for role, p in processes.items():
                f.cpu_us.setdefault(role, []).append((_cpu_s(p) - before[role]) / trips * 1e6)
            f.bulk.append(pool.apply(bulk_mb_per_s, (address, settings.bulk_mib)))
        print(f"  round {round_no}/{settings.rounds} done", file=sys.stderr, flush=True)
    return figures


def _paired(a: list[float], b: list[float], op: Callable[[float, float], float]) -> float:
    return statistics.median(op(x, y) for x, y in zip(a, b, strict=True))


def report(figures: dict[str, Figures], settings: Settings) -> list[str]:
    direct = figures["direct"]
    others = [name for name in figures if name != "direct"]
    med = statistics.median
    header = f"{'metric':<26}" + "".join(f"{n:>12}" for n in figures)
    lines = [
        f"{settings.rounds} rounds, medians; {settings.samples} ping-pongs/round, "
        f"{CONNECTIONS} connections x {settings.duration:g} s, {settings.bulk_mib} MiB bulk; "
        f"{settings.client} client and echo",
        header,
    ]
    rows = [
        ("round trip p50 (us)", "p50_us", "{:12.1f}"),
        ("round trip p99 (us)", "p99_us", "{:12.1f}"),
        ("messages/s (64 conns)", "msgs", "{:12.0f}"),
        ("bulk MB/s each way", "bulk", "{:12.1f}"),
    ]
    for label, key, fmt in rows:
        lines.append(
            f"{label:<26}" + "".join(fmt.format(med(getattr(f, key))) for f in figures.values())
        )
    for role in ("client", "echo", "proxy"):
        lines.append(
            f"{'CPU us/round trip, ' + role:<26}"
            + "".join(
                f"{med(f.cpu_us[role]):12.1f}" if role in f.cpu_us else f"{'-':>12}"
                for f in figures.values()
            )
        )
    lines.append("")
    for name in others:
        f = figures[name]
        added_p50 = _paired(f.p50_us, direct.p50_us, lambda x, y: x - y)
        added_p99 = _paired(f.p99_us, direct.p99_us, lambda x, y: x - y)
        msgs = _paired(f.msgs, direct.msgs, lambda x, y: x / y)
        bulk = _paired(f.bulk, direct.bulk, lambda x, y: x / y)
        lines += [
            f"{name} vs direct:",
            _verdict(f"added p50 {added_p50:.1f} us", added_p50 <= MAX_ADDED_P50_US,
                     f"<= {MAX_ADDED_P50_US:g} us"),
            f"  added p99 {added_p99:.1f} us (no target)",
            _verdict(f"messages/s {msgs:.2f}x direct", msgs >= MIN_MSGS_RATIO,
                     f">= {MIN_MSGS_RATIO:g}x"),
            _verdict(f"bulk {bulk:.2f}x direct", bulk >= MIN_BULK_RATIO,
                     f">= {MIN_BULK_RATIO:g}x"),
        ]  # fmt: skip
        if "proxy" in f.cpu_us:
            ends = med(direct.cpu_us["client"]) + med(direct.cpu_us["echo"])
            cost = med(f.cpu_us["proxy"])
            lines.append(
                f"  the proxy spends {cost:.1f} us of CPU per round trip, client and echo"
                f" {ends:.1f} us direct: with every core busy, at most"
                f" {ends / (ends + cost):.2f}x of direct messages/s"
            )
    return lines + _ours_against_theirs(figures)


def _ours_against_theirs(figures: dict[str, Figures]) -> list[str]:
    """Each of our servers against each other proxy (real or reference) in the same run."""
    lines = []
    for ours in (name for name in ("embedded", "busy-poll") if name in figures):
        for theirs in (name for name in ("real", "reference") if name in figures):
            a, b = figures[ours], figures[theirs]
            lower = _paired(b.p50_us, a.p50_us, lambda x, y: x - y)
            msgs = _paired(a.msgs, b.msgs, lambda x, y: x / y)
            bulk = _paired(a.bulk, b.bulk, lambda x, y: x / y)
            lines.append(
                f"{ours} vs {theirs}: p50 {lower:.1f} us lower, messages/s {msgs:.2f}x,"
                f" bulk {bulk:.2f}x"
            )
    return lines


def _listener_pid(address: str) -> int:
    """The process (of ours) listening on `address`: a proxy server's, for its CPU time."""
    port = _split(address)[1]
    for process in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            for conn in process.net_connections(kind="tcp"):
                if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port:
                    return int(process.pid)
    raise SystemExit(f"error: no child process listens on {address}")


@contextmanager
def reference_proxy(go: str, upstream: str) -> Iterator[str]:
    """Build (with the `go` command given) and run the Toxiproxy-shaped Go proxy; its
    address."""
    with tempfile.TemporaryDirectory(prefix="bench-reference-") as tmp:
        binary = Path(tmp) / "reference"
        # Offline on purpose: the program uses the standard library only.
        env = {**os.environ, "GOPROXY": "off", "GOFLAGS": "-mod=mod"}
        built = subprocess.run(
            [go, "build", "-o", str(binary), "."],
            cwd=REFERENCE_SOURCE, env=env, capture_output=True, text=True,
        )  # fmt: skip
        if built.returncode != 0:
            raise SystemExit(f"error: building {REFERENCE_SOURCE} failed:\n{built.stderr}")
        process = subprocess.Popen(
            [str(binary), "-upstream", upstream],
            stdout=subprocess.PIPE,
            start_new_session=True,  # its own group, as stop_process expects
        )
        try:
            assert process.stdout is not None
            address = process.stdout.readline().decode().strip()
            if not address:
                raise SystemExit("error: the reference proxy exited before listening")
            yield address
        finally:
            stop_process(process)


def _verdict(figure: str, ok: bool, target: str) -> str:
    return f"  {'PASS' if ok else 'MISS'}  {figure} (target {target})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a fast smoke run (few seconds)")
    parser.add_argument("--rounds", type=int, help="rounds per target (default 6, quick 2)")
    parser.add_argument(
        "--client", choices=CLIENTS, default="lean",
        help="how the echo and the messages/s client are written: uvloop protocols (lean, "
        "the default) or plain asyncio streams",
    )  # fmt: skip
    parser.add_argument(
        "--busy-poll", type=int, default=DEFAULT_BUSY_POLL_US, metavar="USEC",
        help="also measure the embedded server started with --busy-poll USEC "
        f"(default {DEFAULT_BUSY_POLL_US}; 0: don't)",
    )  # fmt: skip
    parser.add_argument(
        "--reference", action="store_true",
        help="also measure a Toxiproxy-shaped Go proxy (needs `go` on PATH)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    settings = replace(QUICK if args.quick else FULL, client=args.client)
    if args.rounds is not None:
        if not 1 <= args.rounds <= 50:
            parser.error(f"--rounds must be between 1 and 50, got {args.rounds}")
        settings = replace(settings, rounds=args.rounds)
    if not 0 <= args.busy_poll <= native.MAX_BUSY_POLL_US:
        parser.error(f"--busy-poll must be between 0 and {native.MAX_BUSY_POLL_US}")
    if args.busy_poll and not native.AVAILABLE:
        parser.error("--busy-poll needs the native data plane, which is not built; use 0")
    go = shutil.which("go")
    if args.reference and go is None:
        parser.error("--reference needs the Go toolchain, and there is no `go` on PATH")

    with ExitStack() as stack:
        echo, echo_pid = stack.enter_context(echo_process(args.client))
        targets = {"direct": echo}
        if args.reference and go is not None:
            targets["reference"] = stack.enter_context(reference_proxy(go, echo))
        servers = {"embedded": stack.enter_context(embedded_fault_server())}
        if args.busy_poll:
            servers["busy-poll"] = stack.enter_context(
                embedded_fault_server(busy_poll_us=args.busy_poll)
            )
        if toxiproxy_server_binary():
            servers["real"] = stack.enter_context(real_toxiproxy_server())
        for name, url in servers.items():
            client = stack.enter_context(FaultClient(url))
            targets[name] = client.create_proxy(f"bench_{name}", upstream=echo).listen
        pool = stack.enter_context(mp.get_context("spawn").Pool(1))
        pids = {"client": pool.apply(os.getpid), "echo": echo_pid}
        proxies = [name for name in targets if name != "direct"]
        pids.update({name: _listener_pid(targets[name]) for name in proxies})
        print(f"targets: {targets}", file=sys.stderr, flush=True)
        figures = measure(targets, settings, pool, pids)
    print("\n".join(report(figures, settings)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

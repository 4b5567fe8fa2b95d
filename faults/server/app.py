"""Run the fault server: proxies and the HTTP API in one asyncio loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn

from faults.server import native
from faults.server.api import build_app
from faults.server.collection import Collection
from faults.server.errors import ApiError
from faults.server.model import ProxySpec, parse_json, proxy_specs

log = logging.getLogger("faults.server")


class ConfigError(Exception):
    """A --config file that cannot be used; the message names the file and the problem."""


def load_config(path: Path) -> list[ProxySpec]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return proxy_specs(parse_json(raw))
    except ApiError as exc:
        raise ConfigError(f"{path}: {exc.message}") from None


class StartupError(Exception):
    """The server cannot start (API port taken, a proxy's listen port taken)."""


@dataclass
class Options:
    host: str = "127.0.0.1"
    port: int = 8474
    proxies: list[ProxySpec] = field(default_factory=list)
    seed: int | None = None
    data_plane: str | None = None  # python | native; None: $FAULTS_DATA_PLANE, else native if built
    busy_poll_us: int = 0  # native plane: poll this long after traffic before sleeping; 0 off


class _Uvicorn(uvicorn.Server):
    # We own the signals: uvicorn would re-raise them after shutdown and kill the exit code.
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def bind_api(host: str, port: int) -> socket.socket:
    try:
        return socket.create_server((host, port), reuse_port=False, backlog=128)
    except OSError as exc:
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


async def serve(
    options: Options,
    *,
    ready: Callable[[str, int], None],
    stop: asyncio.Event,
) -> None:
    """Serve until ``stop`` is set; ``ready(host, port)`` is called once the API is bound."""
    try:
        plane = native.choose_plane(options.data_plane)
    except native.DataPlaneError as exc:
        raise StartupError(str(exc)) from None
    if options.busy_poll_us and plane != "native":
        raise StartupError("busy polling needs the native data plane")
    loop = asyncio.get_running_loop()
    if plane == "native":
        native.start(loop, busy_poll_us=options.busy_poll_us)
    try:
        await _serve(options, ready=ready, stop=stop)
    finally:
        native.stop(loop)  # after the collection closed every connection (and detached it)


async def _serve(
    options: Options,
    *,
    ready: Callable[[str, int], None],
    stop: asyncio.Event,
) -> None:
    collection = Collection(options.seed)
    try:
        await collection.populate(options.proxies)
    except ApiError as exc:
        await collection.shutdown()
        raise StartupError(f"config: {exc.message}") from None
    sock = bind_api(options.host, options.port)
    config = uvicorn.Config(
        build_app(collection),
        lifespan="off",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=2,
    )
    server = _Uvicorn(config)
    host, port = sock.getsockname()[:2]
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        ready(host, port)
        stop_wait = asyncio.create_task(stop.wait())
        await asyncio.wait({task, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        stop_wait.cancel()
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=5)
        await collection.shutdown()
        sock.close()


def print_ready(host: str, port: int) -> None:
    shown = f"[{host}]" if ":" in host else host
    print(f"listening on http://{shown}:{port}", flush=True)


async def main_async(options: Options) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await serve(options, ready=print_ready, stop=stop)
    except StartupError as exc:
        print(f"faults.server: {exc}", file=sys.stderr)
        return 1
    return 0


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when importable: it roughly halves the proxy's per-chunk overhead."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run(options: Options) -> int:
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(main_async(options))

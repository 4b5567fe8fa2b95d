"""Start and stop a Toxiproxy-compatible server as a child process.

The embedded server (`python -m faults.server`) runs in its own process so that it never
shares a GIL or an event loop with the load it is faulting. Every server started here
is stopped on exit from its `with` block, also on exceptions, and by `atexit` if the
interpreter ends some other way.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from faults.client import ENV_URL, FaultClient, FaultServerError, load_proxies

START_TIMEOUT = 15.0  # s: a loaded 2-core CI box can take a few seconds to import
STOP_TIMEOUT = 5.0  # s between SIGTERM and SIGKILL
_LISTENING = re.compile(r"^listening on (http://\S+:\d+)\s*$")

_live: set[subprocess.Popen[bytes]] = set()


class FaultServerStartError(RuntimeError):
    """The server process died or did not answer in time; the message has its output tail."""


def toxiproxy_server_binary() -> str | None:
    """Path of a real `toxiproxy-server` on PATH, or None."""
    return shutil.which("toxiproxy-server")


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (for servers that cannot report port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@contextmanager
def embedded_fault_server(
    host: str = "127.0.0.1",
    port: int = 0,
    config: Path | None = None,
    seed: int | None = None,
    busy_poll_us: int = 0,
) -> Iterator[str]:
    """Run `python -m faults.server` and yield its base URL once /version answers."""
    command = [sys.executable, "-m", "faults.server", "--host", host, "--port", str(port)]
    if config is not None:
        command += ["--config", str(config)]
    if seed is not None:
        command += ["--seed", str(seed)]
    if busy_poll_us:
        command += ["--busy-poll", str(busy_poll_us)]
    with _server_process(command, announce=True) as url:
        yield url


@contextmanager
def real_toxiproxy_server(
    binary: str | None = None,
    host: str = "127.0.0.1",
    port: int | None = None,
    args: Sequence[str] = (),
) -> Iterator[str]:
    """Run a real `toxiproxy-server` (it cannot report port 0, so a free port is picked);
    `args` are extra flags such as ``-runtime-metrics``."""
    binary = binary or toxiproxy_server_binary()
    if binary is None:
        raise FaultServerStartError("toxiproxy-server is not on PATH")
    port = port or free_port(host)
    with _server_process(
        [binary, "-host", host, "-port", str(port), *args], url=f"http://{host}:{port}"
    ) as url:
        yield url


@contextmanager
def fault_server(**kw: Any) -> Iterator[FaultClient]:
    """A client for $TOXIPROXY_URL when set (that server is neither started nor
    stopped; `config` is then applied with POST /populate), else for an embedded server
    started with `kw` (see `embedded_fault_server`)."""
    external = os.environ.get(ENV_URL)
    if external:
        with FaultClient(external) as client:
            client.version()  # fail now, with the URL, if it is not there
            if kw.get("config") is not None:
                client.populate(load_proxies(kw["config"]))
            yield client
        return
    with embedded_fault_server(**kw) as url, FaultClient(url) as client:
        yield client


@contextmanager
def _server_process(
    command: Sequence[str], *, announce: bool = False, url: str | None = None
) -> Iterator[str]:
    """Start `command`, find its URL (announced on stdout, or given), wait for /version.

    A server that does not announce (the real toxiproxy-server logs every request to
    stdout) writes stdout into the same file as stderr: a pipe nobody reads fills after
    64 KiB and the server then blocks on its next log line, answering nothing."""
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if announce else stderr,
            stderr=stderr,
            start_new_session=True,  # own process group: we stop it and all its children
        )
        _live.add(process)
        try:
            announced = _Announcement(process.stdout) if announce else None
            base_url = _wait_ready(process, stderr, announced, url, command)
            yield base_url
        finally:
            stop_process(process)
            _live.discard(process)


class _Announcement:
    """Reads the child's stdout in a thread: catches the `listening on` line, and keeps
    draining so that a chatty server never blocks on a full pipe."""

    def __init__(self, stream: IO[bytes] | None) -> None:
        self.url: str | None = None
        self.ready = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[bytes] | None) -> None:
        if stream is None:
            self.ready.set()
            return
        for raw in stream:
            if self.url is None:
                match = _LISTENING.match(raw.decode(errors="replace"))
                if match:
                    self.url = match.group(1)
                    self.ready.set()
        self.ready.set()  # EOF: the process has gone


def _wait_ready(
    process: subprocess.Popen[bytes],
    stderr: IO[bytes],
    announced: _Announcement | None,
    url: str | None,
    command: Sequence[str],
) -> str:
    deadline = time.monotonic() + START_TIMEOUT
    if announced is not None:
        announced.ready.wait(START_TIMEOUT)
        url = announced.url
        if url is None:
            reason = "exited" if process.poll() is not None else "printed no `listening on` line"
            raise FaultServerStartError(_failure(command, process, stderr, reason))
    assert url is not None
    with FaultClient(url, timeout=1.0) as client:
        while True:
            if process.poll() is not None:
                raise FaultServerStartError(_failure(command, process, stderr, "exited"))
            try:
                client.version()
                return url
            except FaultServerError:
                if time.monotonic() > deadline:
                    reason = f"/version did not answer within {START_TIMEOUT:g} s"
                    raise FaultServerStartError(
                        _failure(command, process, stderr, reason)
                    ) from None
                time.sleep(0.05)


def _failure(
    command: Sequence[str], process: subprocess.Popen[bytes], stderr: IO[bytes], reason: str
) -> str:
    stderr.flush()
    stderr.seek(0)
    tail = stderr.read()[-2000:].decode(errors="replace").strip() or "(empty)"
    code = process.poll()
    status = f", exit code {code}" if code is not None else ""
    return f"fault server `{' '.join(command)}` {reason}{status}; output tail:\n{tail}"


def stop_process(process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM the process group, then SIGKILL it if it has not gone after `timeout`."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, timeout)):
        if process.poll() is not None:
            break
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(wait)
    # The group may hold children that outlived the leader.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    if process.stdout is not None:
        process.stdout.close()


@atexit.register
def _stop_all() -> None:
    for process in list(_live):
        stop_process(process, timeout=1.0)

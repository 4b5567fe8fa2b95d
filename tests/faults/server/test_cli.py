"""``python -m faults.server`` as other tools run it: the ready line, signals, exit codes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from faults.server import native
from tests.faults.server.conftest import EchoServer
from tests.faults.server.tcp import connect, recv_exactly, round_trip


@contextmanager
def server(*args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "faults.server", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("listening on http://127.0.0.1:"), (
            line,
            proc.stderr and proc.stderr.read(),
        )
        yield proc, line.split()[-1]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def run_to_exit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "faults.server", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_ready_line_then_clean_exit_on_signal(sig: signal.Signals) -> None:
    with server() as (proc, url):
        assert httpx.get(f"{url}/version").status_code == 200
        proc.send_signal(sig)
        assert proc.wait(10) == 0
        assert proc.stderr is not None and "Traceback" not in proc.stderr.read()


def test_config_file_creates_proxies_at_start(tmp_path: Path, echo: EchoServer) -> None:
    config = tmp_path / "proxies.json"
    config.write_text(
        json.dumps([{"name": "echo", "listen": "localhost:0", "upstream": echo.address}])
    )
    with server("--config", str(config)) as (proc, url):
        proxies = httpx.get(f"{url}/proxies").json()
        assert set(proxies) == {"echo"} and proxies["echo"]["enabled"] is True
        with connect(proxies["echo"]["listen"]) as sock:
            round_trip(sock, b"configured")
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(10) == 0
            assert sock.recv(10) == b""  # open connections are closed on the way out


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (None, "cannot read"),
        ("[{", "bad request body"),
        ('[{"name": "x"}]', "missing required field: upstream"),
        ('{"name": 1}', "bad request body"),
    ],
)
def test_bad_config_is_one_line_and_exit_2(
    tmp_path: Path, content: str | None, fragment: str
) -> None:
    config = tmp_path / "proxies.json"
    if content is not None:
        config.write_text(content)
    result = run_to_exit("--port", "0", "--config", str(config))
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0] and str(config) in lines[0]


def test_taken_api_port_exits_1_with_a_clear_error() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        result = run_to_exit("--port", str(holder.getsockname()[1]))
    assert result.returncode == 1
    assert "cannot listen on 127.0.0.1:" in result.stderr and "Traceback" not in result.stderr


def test_bad_arguments_exit_2() -> None:
    assert run_to_exit("--port", "70000").returncode == 2
    assert run_to_exit("--seed", "abc").returncode == 2


@pytest.mark.skipif(not native.AVAILABLE, reason="busy polling is a native data plane feature")
def test_busy_polling_server_forwards_and_refuses_bad_settings(echo: EchoServer) -> None:
    # The plane is named: this file also runs with FAULTS_DATA_PLANE=python.
    with server("--busy-poll", "200", "--data-plane", "native") as (proc, url):
        listen = httpx.post(
            f"{url}/proxies",
            json={"name": "echo", "listen": "127.0.0.1:0", "upstream": echo.address},
        ).json()["listen"]
        payload = os.urandom(1 << 20)
        with connect(listen) as sock:
            for _ in range(50):
                round_trip(sock, b"ping")
            sock.sendall(payload)
            assert recv_exactly(sock, len(payload)) == payload
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0  # a polling forwarder still stops at once
    result = run_to_exit("--port", "0", "--busy-poll", "10001")
    assert result.returncode == 2
    assert "--busy-poll 10001 is not in 0..10000" in result.stderr
    result = run_to_exit("--port", "0", "--busy-poll", "50", "--data-plane", "python")
    assert result.returncode == 2
    assert "--busy-poll needs the native data plane" in result.stderr

"""The embedded-server launcher, server selection, the proxies file and the demo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from faults.client import FaultClient, FaultServerUnavailable, ProxyConfigError, load_proxies
from faults.embedded import (
    START_TIMEOUT,
    FaultServerStartError,
    embedded_fault_server,
    fault_server,
    free_port,
)


def _children() -> set[int]:
    return {c.pid for c in psutil.Process().children(recursive=True)}


def _gone(pids: set[int]) -> bool:
    """True when none of `pids` is still running (a zombie counts as gone)."""
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            continue
    return True


def test_embedded_server_answers_and_is_stopped_on_exit() -> None:
    before = _children()
    with embedded_fault_server() as url:
        with FaultClient(url) as client:
            assert client.version()
        started = _children() - before
        assert started, "the server should run in a child process"
    assert url.startswith("http://127.0.0.1:")
    assert _gone(started)
    with FaultClient(url, timeout=1) as client, pytest.raises(FaultServerUnavailable):
        client.version()


def test_embedded_server_is_stopped_when_the_block_raises() -> None:
    before = _children()
    with pytest.raises(RuntimeError, match="boom"), embedded_fault_server() as url:
        started = _children() - before
        raise RuntimeError("boom")
    assert started and _gone(started)
    with FaultClient(url, timeout=1) as client, pytest.raises(FaultServerUnavailable):
        client.version()


def test_embedded_server_honours_a_fixed_port() -> None:
    port = free_port()
    with embedded_fault_server(port=port) as url:
        assert url == f"http://127.0.0.1:{port}"


def test_embedded_server_loads_config_and_accepts_seed(tmp_path: Path, echo_upstream: str) -> None:
    listen = f"127.0.0.1:{free_port()}"
    config = tmp_path / "proxies.json"
    config.write_text(json.dumps([{"name": "db", "listen": listen, "upstream": echo_upstream}]))
    with embedded_fault_server(config=config, seed=7) as url, FaultClient(url) as client:
        assert client.proxy("db").listen == listen


def test_a_server_that_dies_at_start_reports_its_stderr(tmp_path: Path) -> None:
    config = tmp_path / "broken.json"
    config.write_text("{ not json")
    start = time.monotonic()
    with pytest.raises(FaultServerStartError) as caught, embedded_fault_server(config=config):
        pass
    message = str(caught.value)
    assert "output tail" in message and "broken.json" in message
    # Its exit is noticed, not sat out: a wait for the start timeout takes at least that long.
    assert time.monotonic() - start < START_TIMEOUT


def test_fault_server_prefers_toxiproxy_url(
    monkeypatch: pytest.MonkeyPatch, embedded_url: str
) -> None:
    monkeypatch.setenv("TOXIPROXY_URL", embedded_url)
    before = len(psutil.Process().children(recursive=True))
    with fault_server() as client:
        assert client.url == embedded_url
        assert len(psutil.Process().children(recursive=True)) == before  # none started
    with FaultClient(embedded_url) as still_there:
        assert still_there.version()  # and the external server was not stopped


def test_fault_server_with_unreachable_toxiproxy_url_fails_clearly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("TOXIPROXY_URL", url)
    with pytest.raises(FaultServerUnavailable, match=url), fault_server():
        pass


def test_fault_server_without_env_starts_an_embedded_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOXIPROXY_URL", raising=False)
    with fault_server() as client:
        assert client.version()


# -- the proxies file --------------------------------------------------------------------


def test_project_proxies_file_is_valid() -> None:
    entries = load_proxies(Path(__file__).parents[2] / "config" / "proxies.json")
    assert {e["name"]: e["listen"] for e in entries} == {
        "postgres": "127.0.0.1:25432",
        "redis": "127.0.0.1:26379",
        "cablecast": "127.0.0.1:28080",
    }
    assert all(e["enabled"] is True for e in entries)


def test_load_proxies_fills_defaults(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text('[{"name": "db", "upstream": "127.0.0.1:5432"}]')
    assert load_proxies(path) == [
        {"name": "db", "upstream": "127.0.0.1:5432", "listen": "127.0.0.1:0", "enabled": True}
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "{ nope",
            "not valid JSON at line 1 column 3: Expecting property name enclosed in double quotes",
        ),
        ('{"name": "db"}', "must be a JSON array of proxies, got an object"),
        ("[42]", "[0]: must be an object, got int"),
        ('[{"upstream": "127.0.0.1:1"}]', '[0]: missing required field "name"'),
        ('[{"name": "db"}]', '[0] "db": missing required field "upstream"'),
        (
            '[{"name": "a", "upstream": "127.0.0.1:1"}, {"name": "b", "upstream": "nope"}]',
            '[1] "b": field "upstream": "nope" is not host:port',
        ),
        (
            '[{"name": "db", "upstream": "127.0.0.1:1", "listen": "127.0.0.1:99999"}]',
            '[0] "db": field "listen": "127.0.0.1:99999" is not host:port',
        ),
        (
            '[{"name": "db", "upstream": "127.0.0.1:1", "enabled": "yes"}]',
            '[0] "db": field "enabled" must be a bool, got a string',
        ),
        (
            '[{"name": "db", "upstream": "127.0.0.1:1", "upstrem": "x"}]',
            "[0] \"db\": unknown field 'upstrem'; known: name, listen, upstream, enabled",
        ),
        (
            '[{"name": "db", "upstream": "127.0.0.1:1"},'
            ' {"name": "db", "upstream": "127.0.0.1:2"}]',
            '[1] "db": duplicate name',
        ),
    ],
)
def test_load_proxies_errors_name_entry_and_field(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "proxies.json"
    path.write_text(content)
    with pytest.raises(ProxyConfigError) as caught:
        load_proxies(path)
    assert str(caught.value) == f"{path}: {message}"


def test_load_proxies_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ProxyConfigError, match="cannot read"):
        load_proxies(tmp_path / "absent.json")


# -- demo --------------------------------------------------------------------------------


def test_demo_runs_in_under_ten_seconds_and_shows_the_toxic() -> None:
    env = {k: v for k, v in os.environ.items() if k != "TOXIPROXY_URL"}
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "faults.demo"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=Path(__file__).parents[2],
    )
    elapsed = time.monotonic() - start
    assert result.returncode == 0, result.stderr
    assert "the toxic took effect and went away" in result.stdout
    # About 1 s on an idle machine; the bound leaves room for a busy one's slow start-up
    # (interpreter, imports, a child fault server) and still catches a demo gone slow.
    assert elapsed < 30


def test_a_server_binary_that_exits_reports_code_and_stderr(tmp_path: Path) -> None:
    from faults.embedded import real_toxiproxy_server

    binary = tmp_path / "toxiproxy-server"
    binary.write_text("#!/bin/sh\necho 'flag provided but not defined' >&2\nexit 2\n")
    binary.chmod(0o755)
    with pytest.raises(FaultServerStartError) as caught, real_toxiproxy_server(str(binary)):
        pass
    assert "exit code 2" in str(caught.value)
    assert "flag provided but not defined" in str(caught.value)


CHATTY_SERVER = """\
import http.server, sys
args = sys.argv[1:]
address = (args[args.index("-host") + 1], int(args[args.index("-port") + 1]))

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        print("x" * 4096, flush=True)  # a log line per request on stdout, as Toxiproxy does
        body = b'{"version": "chatty"}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

http.server.HTTPServer(address, Handler).serve_forever()
"""


def test_a_server_that_logs_to_stdout_keeps_answering(tmp_path: Path) -> None:
    """64 answers are 256 KiB of stdout: an undrained pipe would stall it after 16."""
    from faults.embedded import real_toxiproxy_server

    binary = tmp_path / "toxiproxy-server"
    binary.write_text(f"#!{sys.executable}\n{CHATTY_SERVER}")
    binary.chmod(0o755)
    with real_toxiproxy_server(str(binary)) as url, FaultClient(url, timeout=5) as client:
        assert [client.version() for _ in range(64)] == ["chatty"] * 64


@pytest.mark.real_toxiproxy
def test_the_real_server_keeps_answering_past_a_pipe_of_logs() -> None:
    """Each request logs ~250 bytes on stdout; 600 of them pass a 64 KiB pipe."""
    from faults.embedded import real_toxiproxy_server, toxiproxy_server_binary

    if toxiproxy_server_binary() is None:
        pytest.skip("no real toxiproxy-server on PATH")
    with real_toxiproxy_server() as url, FaultClient(url, timeout=5) as client:
        versions = {client.version() for _ in range(600)}
    assert len(versions) == 1

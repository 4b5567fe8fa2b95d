"""Hosting a real Archivist checkout in the stack (config/apps/archivist-flask.toml).

The first tests need no checkout: how its requirements are chosen and how bad input is
refused. The rest start the real app of ARCHIVIST_SRC (skipped without it) and check it
is healthy through the fault proxies, Redis included, with its schema created.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import psycopg
import pytest

from testbed.hosted.spec import load_app
from testbed.hosted.venv import select, selection_for
from testbed.ports import port_is_free
from testbed.stack import Stack, StackError
from testbed.stack_settings import REPO_ROOT
from tests.conftest import archivist_src

# Its port test and its real-app stacks bind 127.0.0.1:6379: one worker runs them all.
pytestmark = pytest.mark.hosts_real_app

APP = load_app(REPO_ROOT, "archivist-flask")


def test_requirements_leave_out_ml_packages_by_canonical_name() -> None:
    lines = [
        "# ML",
        "Flask>=3.0.0,<4.0.0",
        "pyannote.audio>=3.1.1,<4.0.0",
        "faster_whisper>=0.1.0,<1.0.0  # inline comment",
        "Huggingface-Hub>=0.20",
        "-r ml.txt",
        "",
        "redis>=5.2.1,<6.0.0 ",
        "Flask>=3.0.0,<4.0.0",
    ]
    chosen = select(lines, ("pyannote-audio", "faster-whisper", "huggingface_hub"))
    assert chosen.keep == ("Flask>=3.0.0,<4.0.0", "redis>=5.2.1,<6.0.0")
    assert chosen.left_out == (
        "pyannote.audio>=3.1.1,<4.0.0",
        "faster_whisper>=0.1.0,<1.0.0",
        "Huggingface-Hub>=0.20",
    )


def test_unparseable_requirement_is_a_clear_error() -> None:
    with pytest.raises(StackError, match="requirement 'flask >>= 3': cannot parse it"):
        select(["flask >>= 3"], ())


def _fake_checkout(root: Path) -> Path:
    """Just the files the spec checks for: enough to get past validation, not to run."""
    for name in APP.expect:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("Flask>=3\n" if name.endswith(".txt") else "")
    return root


def _up(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "testbed", "up", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--app", "archivist-flask"], "needs app_src (--app-src PATH)"),
        (["--app", "archivist-flask", "--app-src", "/nonexistent"], "not a directory"),
        (["--app-src", "."], "given for the reference app; pick one with --app"),
        (["--app", "nginx", "--app-src", "."], "unknown app; known: reference, archivist-flask"),
    ],
)
def test_bad_app_arguments_are_one_line_errors(args: list[str], message: str) -> None:
    done = _up("--free-ports", *args)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr


def test_a_folder_that_is_no_checkout_names_what_it_lacks(tmp_path: Path) -> None:
    done = _up("--free-ports", "--app", "archivist-flask", "--app-src", str(tmp_path))
    assert done.returncode == 2
    assert "not a checkout of archivist-flask: lacks core/app.py" in done.stderr


def test_taken_redis_port_of_the_app_is_named_before_anything_starts(tmp_path: Path) -> None:
    """The app's limiter talks to localhost:6379 whatever its env says: if something else
    listens there, the start stops at once and says so, nothing is built or started."""
    src = _fake_checkout(tmp_path / "src")
    port = APP.redis_proxy_port
    assert port == 6379
    holder = None
    if port_is_free("127.0.0.1", port):
        holder = socket.socket()
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", port))
        holder.listen(1)
    try:
        done = _up("--free-ports", "--state-dir", str(tmp_path / "state"), "--app",
                   "archivist-flask", "--app-src", str(src))  # fmt: skip
    finally:
        if holder is not None:
            holder.close()
    assert done.returncode == 2, done.stderr
    assert "port 6379 on 127.0.0.1 (wanted by the redis proxy, where archivist-flask" in (
        done.stderr
    )
    assert not (tmp_path / "state" / "archivist-flask").exists()


# --- with a real checkout (ARCHIVIST_SRC) -------------------------------------------------


def test_the_venv_leaves_out_exactly_the_listed_ml_packages() -> None:
    src = archivist_src()
    chosen = selection_for(APP, src)
    left = {line.split(">")[0].split("=")[0].split("<")[0].strip() for line in chosen.left_out}
    assert left == {"pyannote.audio", "faster_whisper", "huggingface_hub", "pytest"}
    assert any(line.startswith("Flask-Limiter") for line in chosen.keep)
    assert {"celery", "flask-socketio"} <= set(chosen.keep)


@pytest.mark.timeout(900)
def test_ctrl_c_stops_the_real_app_and_everything_else(tmp_path: Path) -> None:
    src = archivist_src()
    assert port_is_free("127.0.0.1", 6379), "127.0.0.1:6379 is taken: the app's Redis proxy"
    state = tmp_path / "state"
    proc = subprocess.Popen(
        [sys.executable, "-m", "testbed", "up", "--free-ports", "--state-dir", str(state),
         "--app", "archivist-flask", "--app-src", str(src)],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        pids = _wait_ready(proc, state / "pids.json", deadline=time.monotonic() + 600)
        assert {"api", "worker", "postgres", "redis", "faults", "cablecast"} <= set(pids)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(90) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    alive = [name for name, pid in pids.items() if psutil.pid_exists(pid)]
    assert alive == [], f"still running after Ctrl-C: {alive}"
    assert port_is_free("127.0.0.1", 6379)


def _wait_ready(proc: subprocess.Popen[str], pids_file: Path, deadline: float) -> dict[str, int]:
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("press Ctrl-C"):
            record = json.loads(pids_file.read_text())
            return {name: rec["pid"] for name, rec in record["children"].items()}
        if time.monotonic() > deadline:
            break
    raise AssertionError(f"the stack did not come up (exit {proc.poll()})")


@pytest.mark.timeout(900)
def test_real_app_is_healthy_through_every_proxy(archivist_stack: Stack) -> None:
    stack = archivist_stack
    answer = httpx.get(f"{stack.api_url}/api/health", verify=False, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] in ("healthy", "degraded")
    assert answer.json()["services"]["redis"] == "healthy"
    proxies = {p.name: p.listen for p in stack.faults.proxies().values()}
    assert proxies["redis"] == "127.0.0.1:6379"
    env = stack.app_env
    assert env["DATABASE_URL"].endswith(f"{proxies['postgres']}/archivist")
    assert env["CELERY_BROKER_URL"] == "redis://127.0.0.1:6379/0"
    assert env["CABLECAST_API_URL"] == f"http://{proxies['cablecast']}/CablecastAPI/v1"
    # The Celery worker holds its broker connection through the Redis proxy.
    worker = psutil.Process(stack.pids()["worker"])
    assert any(c.raddr and c.raddr.port == 6379 for c in worker.net_connections(kind="tcp")), (
        "the Celery worker has no connection to the Redis proxy"
    )
    # Its schema exists (created with its own models, through the proxy).
    with psycopg.connect(stack.database_url) as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables")}
    assert {"digital_files", "transcription_results", "transcription_jobs"} <= tables


@pytest.mark.timeout(900)
def test_a_request_carries_bytes_on_all_three_links(archivist_stack: Stack) -> None:
    stack = archivist_stack
    before = _link_bytes(stack)
    with httpx.Client(base_url=stack.api_url, verify=False, timeout=30) as http:
        token = http.get("/api/csrf-token").json()["csrf_token"]  # Redis: the limiter
        shows = http.get("/api/cablecast/shows")  # Cablecast, through its proxy
        files = http.post(
            "/api/upload",  # PostgreSQL: a row of digital_files
            files={"file": ("minutes.pdf", b"%PDF-1.4 minutes", "application/pdf")},
            data={"metadata": json.dumps({"city": "Birchwood"})},
            headers={"X-CSRF-Token": token, "Referer": f"{stack.api_url}/"},
        )
    assert shows.status_code == 200 and shows.json()["success"] is True
    assert files.status_code == 200, files.text
    assert files.json()["path"].startswith("/mnt/flex-1/")  # its private /mnt
    stored = stack.state_dir / "archivist-flask" / files.json()["path"].lstrip("/")
    assert stored.read_bytes() == b"%PDF-1.4 minutes"
    after = _link_bytes(stack)
    for link in ("postgres", "redis", "cablecast"):
        assert after[link] > before[link], f"no bytes on the {link} link"


def _link_bytes(stack: Stack) -> dict[str, float]:
    text = httpx.get(f"{stack.fault_url}/metrics", timeout=10).text
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("toxiproxy_proxy_sent_bytes_total{"):
            proxy = line.split('proxy="', 1)[1].split('"', 1)[0]
            totals[proxy] = totals.get(proxy, 0.0) + float(line.rsplit(" ", 1)[1])
    return totals


@pytest.mark.timeout(900)
def test_a_crash_of_the_real_app_stops_the_whole_stack(archivist_stack: Stack) -> None:
    """Last in this module: it ends the module's stack. gunicorn's master dies by SIGKILL;
    the watchdog stops everything, its workers and the Celery worker included."""
    stack = archivist_stack
    api = psutil.Process(stack.pids()["api"])
    children = api.children(recursive=True)
    assert children, "gunicorn runs no workers"
    os.kill(api.pid, signal.SIGKILL)  # not stack.kill: that one is a stop on purpose
    assert stack.wait(60), "the stack did not stop after its web app crashed"
    assert stack.failure is not None and "api" in stack.failure
    _, alive = psutil.wait_procs(children, timeout=10)  # SIGKILLed; init reaps them
    assert [p.pid for p in alive] == [], "gunicorn workers survived"
    assert not psutil.pid_exists(stack.pids()["worker"]), "the Celery worker survived"
    assert port_is_free("127.0.0.1", 6379)

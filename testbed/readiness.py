"""Readiness probes of the stack's parts: is each one up and answering?

Plain functions of the addresses they probe, so the orchestrator (testbed.stack) only
decides when to ask, and a probe can be read, or tried, without a running Stack.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

import httpx
import psutil
import psycopg
import redis

from faults.client import FaultClient
from testbed import postgres as pg
from testbed.hosted.spec import HostedApp
from testbed.processes import ManagedProcess, StackError


def served_by(process: ManagedProcess, port: int, check: Callable[[], bool]) -> Callable[[], bool]:
    """`check`, passed only while `process` (or a child of it) is what listens on `port`.

    With free ports, two stacks starting side by side can pick the same port: one child
    binds it, the other's child fails, and its probe would reach the neighbour and call it
    healthy (two stacks then share, say, one PostgreSQL). Refusing a foreign listener
    leaves our child to exit with its bind error, which the start retries on new ports.
    """

    def probe() -> bool:
        if not check():
            return False
        if process.pid is None or not _listens(process.pid, port):
            raise StackError(
                f"port {port} answers, but not from {process.name}: address already in use"
            )
        return True

    return probe


def _listens(pid: int, port: int) -> bool:
    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.Error:
        return False
    for proc in tree:
        try:
            sockets = proc.net_connections(kind="inet")
        except psutil.Error:
            continue
        if any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in sockets):
            return True
    return False


def postgres_ready(admin_url: str) -> bool:
    """Our embedded PostgreSQL accepts connections."""
    return pg.ping(admin_url)


def redis_ready(url: str) -> bool:
    """Redis answers PING (short timeouts: the caller polls)."""
    client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
    try:
        return bool(client.ping())
    finally:
        client.close()


def external_database_ready(url: str) -> None:
    """A DATABASE_URL server answers; its database is created if it does not exist yet.

    Raises StackError naming the URL, since the user gave it and must fix it.
    """
    try:
        pg.ping(url, timeout=3)
        return
    except psycopg.OperationalError as exc:
        if "does not exist" not in str(exc):
            raise StackError(f"DATABASE_URL={url}: not reachable: {exc}") from None
    parts = urlsplit(url)
    admin = urlunsplit(parts._replace(path="/postgres"))
    try:
        pg.ensure_database(admin, parts.path.lstrip("/"))
        pg.ping(url, timeout=3)
    except psycopg.Error as exc:
        raise StackError(f"DATABASE_URL={url}: cannot create its database: {exc}") from None


def faults_ready(fault_url: str) -> bool:
    """The fault server answers its version endpoint."""
    with FaultClient(fault_url, timeout=1.0) as client:
        client.version()
    return True


def cablecast_ready(cablecast_url: str) -> bool:
    """The Cablecast simulator answers /systeminfo."""
    return httpx.get(f"{cablecast_url}/systeminfo", timeout=1.0).status_code == 200


def api_ready(api_url: str, hosted: HostedApp | None) -> bool:
    """The API (ours, or the hosted real app's web process) reports healthy."""
    if hosted is None:
        return httpx.get(f"{api_url}/api/health", timeout=2.0).status_code == 200
    # Its health takes seconds (it asks Celery), and its certificate is our self-signed one.
    answer = httpx.get(
        f"{api_url}{hosted.health}",
        headers=hosted.probe_headers,
        timeout=15.0,
        verify=False,
    )
    return answer.status_code in hosted.ok_status


def worker_connected(process: ManagedProcess, redis_proxy_port: int) -> Callable[[], bool]:
    """Healthy once the worker holds a connection to Redis (through its proxy).

    Redis 6.2 lists a consumer in XINFO only after its first delivery, so an idle
    worker is not visible there; its open connection to the job queue is.
    """

    def check() -> bool:
        assert process.pid is not None
        connections = psutil.Process(process.pid).net_connections(kind="tcp")
        return any(
            c.status == psutil.CONN_ESTABLISHED and c.raddr and c.raddr.port == redis_proxy_port
            for c in connections
        )

    return check

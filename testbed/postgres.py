"""PostgreSQL from pgserver's shipped binaries, on 127.0.0.1 TCP, as a child of the stack.

We run `postgres` in the foreground instead of `pg_ctl start` so the server stays our child
in our process group: the watchdog sees it die, and a stop reaches it. PostgreSQL refuses
to run as root, so as root (CI) it runs as an unprivileged system user through `runuser`,
the way pgserver itself does.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import subprocess
import warnings
from collections.abc import Mapping
from pathlib import Path

import psycopg
from psycopg import sql

from testbed.processes import ManagedProcess, StackError, wait_healthy

SYSTEM_USER = "pgserver"  # the user pgserver itself creates when run as root
DB_USER = "postgres"
# A Unix socket path longer than this does not fit in sockaddr_un.
_MAX_SOCKET_PATH = 100


def bin_dir() -> Path:
    with warnings.catch_warnings():
        # pgserver's package import asks platformdirs for a runtime dir and warns without one.
        warnings.simplefilter("ignore")
        from pgserver._commands import POSTGRES_BIN_PATH
    return Path(POSTGRES_BIN_PATH)


def _ensure_system_user() -> pwd.struct_passwd:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver.postgres_server import ensure_user_exists
    entry = ensure_user_exists(SYSTEM_USER)
    assert entry is not None
    return entry


def _make_traversable(path: Path) -> None:
    """Let the unprivileged user reach `path` (pgserver's own helpers, applied to our dirs)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver.utils import ensure_folder_permissions, ensure_prefix_permissions
    ensure_prefix_permissions(path)
    bins = bin_dir()
    ensure_prefix_permissions(bins)
    ensure_folder_permissions(bins, 0o055)
    ensure_folder_permissions(bins.parent / "lib", 0o044)


def running_as_root() -> bool:
    return os.geteuid() == 0


def connection_url(host: str, port: int, database: str, user: str = DB_USER) -> str:
    return f"postgresql://{user}@{host}:{port}/{database}"


class EmbeddedPostgres:
    """One PostgreSQL cluster whose data lives in `root/data`; `initdb` runs only once."""

    def __init__(
        self,
        root: Path,
        host: str,
        port: int,
        database: str = "archivist",
        settings: Mapping[str, str] | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.root = root.resolve()
        self.host = host
        self.port = port
        self.database = database
        self.settings = dict(settings or {})
        self.data_dir = self.root / "data"
        self.socket_dir = self.root / "run"
        self.log_path = log_path or self.root / "postgres.log"
        self.as_user = SYSTEM_USER if running_as_root() else None
        self.process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        """Direct URL of the application database."""
        return connection_url(self.host, self.port, self.database)

    @property
    def admin_url(self) -> str:
        return connection_url(self.host, self.port, "postgres")

    def _as_user(self, argv: list[str]) -> list[str]:
        return ["runuser", "-u", self.as_user, "--", *argv] if self.as_user else argv

    def prepare(self) -> None:
        """Create the folders (owned by the server's user) and run `initdb` if needed."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        if self.as_user:
            entry = _ensure_system_user()
            _make_traversable(self.data_dir)
            for path in (self.root, self.data_dir, self.socket_dir):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self.data_dir.chmod(0o700)
        if (self.data_dir / "PG_VERSION").exists():
            return
        argv = [str(bin_dir() / "initdb"), "-D", str(self.data_dir), "-U", DB_USER]
        argv += ["-A", "trust", "-E", "UTF8", "--no-sync"]
        result = subprocess.run(
            self._as_user(argv), capture_output=True, text=True, timeout=120, check=False
        )
        if result.returncode != 0:
            output = result.stderr.strip() or result.stdout.strip()
            hint = ""
            if self.as_user and "Permission denied" in output:
                hint = (
                    f"\nHint: as root, PostgreSQL runs as user {self.as_user!r}, who must be able "
                    f"to traverse every folder above {self.data_dir}; pytest resets "
                    "/tmp/pytest-of-root to mode 0700, so keep stack state elsewhere "
                    "(testbed.stack.temporary_state_dir())."
                )
            raise StackError(
                f"initdb of {self.data_dir} failed (exit {result.returncode}):\n{output}{hint}"
            )

    def command(self) -> list[str]:
        socket_dir = str(self.socket_dir)
        if len(f"{socket_dir}/.s.PGSQL.{self.port}") > _MAX_SOCKET_PATH:
            socket_dir = ""  # TCP only: the state dir is too deep for a Unix socket
        argv = [str(bin_dir() / "postgres"), "-D", str(self.data_dir)]
        argv += ["-h", self.host, "-p", str(self.port), "-k", socket_dir]
        for key, value in self.settings.items():
            argv += ["-c", f"{key}={value}"]
        return self._as_user(argv)

    def start(self, timeout: float = 30.0) -> None:
        """Start the server (after `prepare`) and wait until it accepts connections."""
        self.launch()
        self.wait_ready(timeout)

    def launch(self) -> None:
        """Spawn the server without waiting; `wait_ready` finishes the start."""
        self.prepare()
        # SIGINT is PostgreSQL's "fast" shutdown: it does not wait for clients to leave.
        self.process = ManagedProcess(
            "postgres", self.command(), self.log_path, stop_signal=signal.SIGINT
        )
        self.process.start()

    def wait_ready(self, timeout: float = 30.0) -> None:
        assert self.process is not None, "launch() first"
        wait_healthy(self.process, lambda: ping(self.admin_url), timeout)
        ensure_database(self.admin_url, self.database)

    def stop(self, timeout: float = 15.0) -> None:
        if self.process is not None:
            self.process.stop(timeout)


def ping(url: str, timeout: float = 1.0) -> bool:
    with psycopg.connect(url, connect_timeout=max(1, round(timeout)), autocommit=True) as conn:
        conn.execute("SELECT 1")
    return True


def ensure_database(admin_url: str, database: str) -> None:
    """Create `database` unless it exists (CREATE DATABASE has no IF NOT EXISTS)."""
    with psycopg.connect(admin_url, connect_timeout=5, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
        if exists.fetchone() is None:
            # Another starter may have created it since the check: that is fine. A creation
            # still in flight elsewhere fails on the catalogue's unique index instead.
            with contextlib.suppress(
                psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation
            ):
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))

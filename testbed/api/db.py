"""PostgreSQL: the bounded connection pool, migrations under an advisory lock, seed users.

The pool hands out checked connections (a connection broken by an outage is replaced,
so the API recovers by itself), waits at most `pool_timeout_s` for one (then the request
is a 503), and every session has a `statement_timeout`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from importlib import resources

import psycopg
from psycopg_pool import AsyncConnectionPool

from testbed.api.passwords import hash_password
from testbed.api.settings import DatabaseSettings, UsersSettings

log = logging.getLogger("archivist.db")
MIGRATION_LOCK = 7_424_211  # any constant: every API process takes the same advisory lock
RECONNECT_TIMEOUT_S = 3.0  # see make_pool
IDLE_IN_TRANSACTION_MS = 5000  # an orphaned transaction releases its row locks after this


def connect_kwargs(settings: DatabaseSettings) -> dict[str, object]:
    return {
        "connect_timeout": settings.connect_timeout_s,
        # The idle-transaction bound is also the database's default (migration 002); here
        # it holds for the app's sessions on a database this code did not migrate.
        "options": f"-c statement_timeout={settings.statement_timeout_ms}"
        f" -c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_MS}",
        "autocommit": True,
    }


def make_pool(url: str, settings: DatabaseSettings, name: str) -> AsyncConnectionPool:
    return AsyncConnectionPool(
        url,
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        timeout=settings.pool_timeout_s,
        kwargs=connect_kwargs(settings),
        check=AsyncConnectionPool.check_connection,
        # psycopg_pool retries a failed connection with an uncapped doubling back-off
        # (1, 2, 4, 8, 16 s...), so after an outage of T seconds the pool may sit idle
        # for about T more before trying again. A short reconnect_timeout ends each
        # retry chain early; the next request that finds the pool empty starts a fresh
        # attempt at once, so recovery follows the database within seconds.
        reconnect_timeout=RECONNECT_TIMEOUT_S,
        name=name,
        open=False,
    )


def _migrations() -> list[tuple[str, str]]:
    folder = resources.files("testbed.api") / "migrations"
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    return [(f.name, f.read_text()) for f in files]


async def migrate(url: str, settings: DatabaseSettings) -> list[str]:
    """Apply the .sql files not applied yet; concurrent API processes serialise on a lock."""
    async with await psycopg.AsyncConnection.connect(url, **connect_kwargs(settings)) as conn:  # type: ignore[arg-type]
        await conn.execute("SET statement_timeout = 0")
        await conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations"
                " (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            cur = await conn.execute("SELECT name FROM schema_migrations")
            done = {row[0] for row in await cur.fetchall()}
            applied = []
            for name, sql in _migrations():
                if name in done:
                    continue
                async with conn.transaction():
                    await conn.execute(sql)
                    await conn.execute("INSERT INTO schema_migrations (name) VALUES (%s)", (name,))
                applied.append(name)
            return applied
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))


async def migrate_with_deadline(url: str, settings: DatabaseSettings) -> list[str]:
    """Start-up waits a bounded time for PostgreSQL, then fails with the last error."""
    deadline = time.monotonic() + settings.migrate_deadline_s
    delay = 0.2
    while True:
        try:
            return await migrate(url, settings)
        except psycopg.OperationalError as exc:
            if time.monotonic() + delay > deadline:
                raise
            log.warning("database not ready (%s); retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


async def seed_users(pool: AsyncConnectionPool, users: UsersSettings, scrypt_n: int) -> int:
    """Create the configured test users that do not exist yet; returns how many were added."""
    names = users.names()
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT username FROM users WHERE username = ANY(%s)", (names,))
        existing = {row[0] for row in await cur.fetchall()}
    missing = [n for n in names if n not in existing]
    if not missing:
        return 0
    # One hash for all seeded users: they share one password, and scrypt is slow on purpose.
    hashed = await asyncio.to_thread(hash_password, users.password, scrypt_n)
    async with pool.connection() as conn, conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO users (username, password_hash, role) VALUES (%s, %s, %s)"
            " ON CONFLICT (username) DO NOTHING",
            [(n, hashed, users.role) for n in missing],
        )
    return len(missing)

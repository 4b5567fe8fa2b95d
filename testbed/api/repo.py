"""VOD rows in PostgreSQL: the only module that writes SQL for VODs.

Idempotent create and optimistic updates are single statements, so their guarantees
come from PostgreSQL (a unique key, `ON CONFLICT`, `WHERE version = %s`), not from
application locks that a second API process would not see.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

COLUMNS = (
    "id, title, description, file_name, duration_s, size_bytes, status, failure_reason, "
    "version, cablecast_show_id, cablecast_vod_id, created_at, updated_at"
)


def to_json(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}


def request_hash(fields: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int | None:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    prefix, _, number = text.partition(":")
    return int(number) if prefix == "id" and number.isdigit() else None


async def _one(
    conn: AsyncConnection[Any], sql: str, args: tuple[Any, ...]
) -> dict[str, Any] | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql, args)
        row = await cur.fetchone()
    return to_json(row) if row else None


async def create(
    pool: AsyncConnectionPool, fields: dict[str, Any], key: str | None, user: str
) -> tuple[dict[str, Any], bool]:
    """Insert a VOD; with a key, a retry returns the first row. Returns (vod, created)."""
    digest = request_hash(fields)
    args = (
        fields["title"],
        fields["description"],
        fields["file_name"],
        fields["duration_s"],
        fields["size_bytes"],
        key,
        digest,
        user,
    )
    insert = (
        "INSERT INTO vods (title, description, file_name, duration_s, size_bytes,"
        " idempotency_key, request_hash, created_by) VALUES (%s,%s,%s,%s,%s,%s,%s,%s)"
    )
    async with pool.connection() as conn:
        if key is None:
            row = await _one(conn, f"{insert} RETURNING {COLUMNS}", args)
            assert row is not None
            return row, True
        # ON CONFLICT waits for a concurrent insert of the same key to commit, then skips.
        row = await _one(
            conn, f"{insert} ON CONFLICT (idempotency_key) DO NOTHING RETURNING {COLUMNS}", args
        )
        if row is not None:
            return row, True
        existing = await _one(
            conn, f"SELECT {COLUMNS}, request_hash FROM vods WHERE idempotency_key = %s", (key,)
        )
    if existing is None:  # the first row was deleted since: the key is spent
        return {"id": None, "request_hash": None}, False
    return existing, False


async def get(pool: AsyncConnectionPool, vod_id: int) -> dict[str, Any] | None:
    async with pool.connection() as conn:
        return await _one(conn, f"SELECT {COLUMNS} FROM vods WHERE id = %s", (vod_id,))


async def update(
    pool: AsyncConnectionPool, vod_id: int, changes: dict[str, Any], expected: int | None
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Apply changes if the version matches. Returns (updated, current-if-not-updated)."""
    sets = ", ".join(f"{name} = %s" for name in changes)
    guard = "" if expected is None else " AND version = %s"
    args = (*changes.values(), vod_id, *(() if expected is None else (expected,)))
    async with pool.connection() as conn:
        row = await _one(
            conn,
            f"UPDATE vods SET {sets}, version = version + 1, updated_at = now()"
            f" WHERE id = %s{guard} RETURNING {COLUMNS}",
            args,
        )
        if row is not None:
            return row, None
        return None, await _one(conn, f"SELECT {COLUMNS} FROM vods WHERE id = %s", (vod_id,))


async def delete(pool: AsyncConnectionPool, vod_id: int) -> bool:
    async with pool.connection() as conn:
        cur = await conn.execute("DELETE FROM vods WHERE id = %s", (vod_id,))
        return cur.rowcount > 0


async def page(
    pool: AsyncConnectionPool,
    limit: int,
    after: int | None,
    status: str | None,
    q: str | None,
    slow: bool,
) -> tuple[list[dict[str, Any]], int | None]:
    """Newest first, keyset on id. `slow` is the slow-list regression: N+1 re-reads."""
    where: list[str] = ["TRUE"]
    args: list[Any] = []
    if after is not None:
        where.append("id < %s")
        args.append(after)
    if status is not None:
        where.append("status = %s")
        args.append(status)
    if q:
        where.append("title ILIKE %s")
        args.append("%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
    sql = f"SELECT {COLUMNS} FROM vods WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT %s"
    async with pool.connection() as conn:
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(sql, (*args, limit + 1))
            rows = [to_json(r) for r in await cur.fetchall()]
        if slow:
            # The regression: one more query per item, plus an unindexed scan each time.
            for i, row in enumerate(rows):
                again = await _one(
                    conn,
                    f"SELECT {COLUMNS} FROM vods WHERE id = %s"
                    " AND (SELECT count(*) FROM vods WHERE description LIKE %s) >= 0",
                    (row["id"], f"%{row['title'][:3]}%"),
                )
                rows[i] = again or row
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1]["id"] if more and rows else None)


async def start_job(
    pool: AsyncConnectionPool, vod_id: int, new_job_id: str
) -> tuple[dict[str, Any] | None, str | None, str]:
    """Give the VOD a job and commit it; the caller queues the job after this returns.

    Committing before queueing means a worker never reads a row older than its job (it
    would take the job for a superseded one and drop it). Returns (vod, job_id, outcome)
    where outcome is "queued" (a new job), "existing" (a job already queued or running:
    asking twice is safe), "missing" or "published".
    """
    async with pool.connection() as conn, conn.transaction():
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                f"SELECT {COLUMNS}, job_id FROM vods WHERE id = %s FOR UPDATE", (vod_id,)
            )
            row = await cur.fetchone()
        if row is None:
            return None, None, "missing"
        job_id = row.pop("job_id")
        if row["status"] == "published":
            return to_json(row), job_id, "published"
        if row["status"] != "failed" and job_id is not None:
            return to_json(row), job_id, "existing"
        updated = await _one(
            conn,
            "UPDATE vods SET job_id = %s, status = 'uploaded', failure_reason = NULL,"
            f" version = version + 1, updated_at = now() WHERE id = %s RETURNING {COLUMNS}",
            (new_job_id, vod_id),
        )
    return updated, new_job_id, "queued"


async def abandon_job(pool: AsyncConnectionPool, vod_id: int, job_id: str) -> dict[str, Any] | None:
    """Take back a job the API could not queue, unless a worker has started it already.

    The caller answers 503, so the VOD must not keep a job nobody will run: a client that
    does not ask again would leave it `uploaded` with a job id for ever.
    """
    async with pool.connection() as conn:
        return await _one(
            conn,
            "UPDATE vods SET job_id = NULL, version = version + 1, updated_at = now()"
            f" WHERE id = %s AND job_id = %s AND status = 'uploaded' RETURNING {COLUMNS}",
            (vod_id, job_id),
        )

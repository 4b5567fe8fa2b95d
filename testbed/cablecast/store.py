"""What the Cablecast simulator holds: shows, VODs and every request it received.

SQLite, so that `--state FILE` keeps it across a restart of the simulator (a worker's
retry after a crash must still find the show it created), and `:memory:` otherwise.
A VOD's state is derived from its age, so progress survives restarts too.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS shows (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    title TEXT NOT NULL, cg_title TEXT NOT NULL, comments TEXT NOT NULL,
    location INTEGER NOT NULL, event_date TEXT, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS vods (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    show INTEGER NOT NULL REFERENCES shows(id), vod_configuration INTEGER NOT NULL,
    created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS chapters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    vod INTEGER NOT NULL REFERENCES vods(id), title TEXT NOT NULL,
    start_time INTEGER NOT NULL, body TEXT NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS received (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, method TEXT NOT NULL,
    path TEXT NOT NULL, query TEXT NOT NULL, status INTEGER NOT NULL, body TEXT);
"""

LOCATIONS = [{"id": 1, "name": "Archivist Studio"}, {"id": 2, "name": "Council Chamber"}]
CHANNELS = [
    {"id": 1, "name": "Public Access", "primaryLocation": 1},
    {"id": 2, "name": "Government", "primaryLocation": 2},
]
QUALITIES = [{"id": 1, "name": "Low"}, {"id": 2, "name": "Medium"}, {"id": 3, "name": "High"}]
VOD_CONFIGURATIONS = [
    {"id": 1, "name": "H.264 1080p", "location": 1},
    {"id": 2, "name": "H.264 720p", "location": 1},
]


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    offset: int
    page_size: int
    count: int

    def envelope(self, root: str) -> dict[str, Any]:
        meta = {"offset": self.offset, "pageSize": self.page_size, "count": self.count}
        return {root: self.items, "meta": meta}


class Store:
    """Thread-safe access to the simulator's SQLite file; every call is short."""

    def __init__(self, path: str, queued_s: float, processing_s: float) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        self._queued_s = queued_s
        self._processing_s = processing_s
        with self._lock:
            # WAL and NORMAL sync: every request is recorded, and a durable-per-request
            # fsync would make the simulator the bottleneck of a load test.
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._db.execute(sql, args).fetchall())

    def _insert(self, sql: str, args: tuple[Any, ...]) -> int:
        with self._lock:
            cur = self._db.execute(sql, args)
            return int(cur.lastrowid or 0)

    # -- shows --------------------------------------------------------------------------
    def _show(self, row: sqlite3.Row) -> dict[str, Any]:
        vods = [
            r["id"] for r in self._all("SELECT id FROM vods WHERE show=? ORDER BY id", (row["id"],))
        ]
        return {
            "id": row["id"],
            "title": row["title"],
            "cgTitle": row["cg_title"],
            "comments": row["comments"],
            "location": row["location"],
            "eventDate": row["event_date"],
            "vods": vods,
            "reels": [],
        }

    def search_shows(self, search: str, offset: int, page_size: int) -> Page:
        like = f"%{search.lower()}%"
        where = "lower(title) LIKE ? OR lower(cg_title) LIKE ? OR lower(comments) LIKE ?"
        count = self._all(f"SELECT count(*) AS n FROM shows WHERE {where}", (like, like, like))
        rows = self._all(
            f"SELECT * FROM shows WHERE {where} ORDER BY id LIMIT ? OFFSET ?",
            (like, like, like, page_size, offset),
        )
        return Page([self._show(r) for r in rows], offset, page_size, count[0]["n"])

    def get_show(self, show_id: int) -> dict[str, Any] | None:
        rows = self._all("SELECT * FROM shows WHERE id=?", (show_id,))
        return self._show(rows[0]) if rows else None

    def create_show(
        self, title: str, cg_title: str, comments: str, location: int, event_date: str | None
    ) -> dict[str, Any]:
        show_id = self._insert(
            "INSERT INTO shows (title, cg_title, comments, location, event_date, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (title, cg_title, comments, location, event_date, time.time()),
        )
        show = self.get_show(show_id)
        assert show is not None
        return show

    # -- vods ---------------------------------------------------------------------------
    def _progress(self, created_at: float) -> tuple[str, int]:
        age = time.time() - created_at
        if age < self._queued_s:
            return "queued", 0
        done = (age - self._queued_s) / max(self._processing_s, 1e-6)
        if done < 1.0:
            return "processing", int(done * 100)
        return "complete", 100

    def _vod(self, row: sqlite3.Row) -> dict[str, Any]:
        state, percent = self._progress(row["created_at"])
        file_name = f"show-{row['show']}-vod-{row['id']}.mp4"
        return {
            "id": row["id"],
            "show": row["show"],
            "vodConfiguration": row["vod_configuration"],
            "fileName": file_name,
            "url": f"https://vod.example.invalid/{file_name}",
            "vodState": state,
            "percentComplete": percent,
        }

    def list_vods(self, offset: int, page_size: int) -> Page:
        count = self._all("SELECT count(*) AS n FROM vods")[0]["n"]
        rows = self._all("SELECT * FROM vods ORDER BY id LIMIT ? OFFSET ?", (page_size, offset))
        return Page([self._vod(r) for r in rows], offset, page_size, count)

    def get_vod(self, vod_id: int) -> dict[str, Any] | None:
        rows = self._all("SELECT * FROM vods WHERE id=?", (vod_id,))
        return self._vod(rows[0]) if rows else None

    def create_vod(self, show: int, vod_configuration: int) -> dict[str, Any]:
        vod_id = self._insert(
            "INSERT INTO vods (show, vod_configuration, created_at) VALUES (?, ?, ?)",
            (show, vod_configuration, time.time()),
        )
        vod = self.get_vod(vod_id)
        assert vod is not None
        return vod

    # -- chapters (of a VOD) ---------------------------------------------------------------
    def _chapter(self, row: sqlite3.Row) -> dict[str, Any]:
        extra = json.loads(row["body"])
        return {**extra, "id": row["id"], "vod": row["vod"], "title": row["title"],
                "startTime": row["start_time"]}  # fmt: skip

    def list_chapters(self, vod_id: int, offset: int, page_size: int) -> Page:
        count = self._all("SELECT count(*) AS n FROM chapters WHERE vod=?", (vod_id,))[0]["n"]
        rows = self._all(
            "SELECT * FROM chapters WHERE vod=? ORDER BY start_time, id LIMIT ? OFFSET ?",
            (vod_id, page_size, offset),
        )
        return Page([self._chapter(r) for r in rows], offset, page_size, count)

    def create_chapter(
        self, vod_id: int, title: str, start_time: int, extra: dict[str, Any]
    ) -> dict[str, Any]:
        chapter_id = self._insert(
            "INSERT INTO chapters (vod, title, start_time, body, created_at) VALUES (?,?,?,?,?)",
            (vod_id, title, start_time, json.dumps(extra), time.time()),
        )
        return self._chapter(self._all("SELECT * FROM chapters WHERE id=?", (chapter_id,))[0])

    # -- audit --------------------------------------------------------------------------
    def record(self, method: str, path: str, query: str, status: int, body: bytes | None) -> None:
        text = body.decode("utf-8", "replace") if body else None
        self._insert(
            "INSERT INTO received (at, method, path, query, status, body) VALUES (?,?,?,?,?,?)",
            (time.time(), method, path, query, status, text),
        )

    def received(self, method: str | None, offset: int, limit: int) -> Page:
        where, args = ("WHERE method=?", (method.upper(),)) if method else ("", ())
        count = self._all(f"SELECT count(*) AS n FROM received {where}", args)[0]["n"]
        rows = self._all(
            f"SELECT * FROM received {where} ORDER BY seq LIMIT ? OFFSET ?", (*args, limit, offset)
        )
        items = []
        for r in rows:
            body: Any = r["body"]
            if body:
                with contextlib.suppress(ValueError):
                    body = json.loads(body)
            items.append(
                {
                    "seq": r["seq"],
                    "at": r["at"],
                    "method": r["method"],
                    "path": r["path"],
                    "query": r["query"],
                    "status": r["status"],
                    "body": body,
                }
            )
        return Page(items, offset, limit, count)

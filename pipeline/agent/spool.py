"""The agent's on-disk spool: every event is written here before it is sent.

A SQLite file in the agent's data directory (WAL; a committed write survives the agent being
killed). Events are kept in arrival order with their id and msgpack bytes, sent from here,
and deleted when the backend acknowledges them; after a reconnect or a restart whatever is
still here is sent again, in order. The spool is bounded by bytes: when a write would exceed
``max_bytes`` the oldest events are dropped, and the caller is told how many, so that it can
count and log the loss.

Synchronous: the agent calls it from a worker thread, one call per batch.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import StoreError

SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    size INTEGER NOT NULL,
    event BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS spool_by_id ON spool (id);
"""


@dataclass(slots=True, frozen=True)
class Spooled:
    seq: int
    id: str
    event: bytes


class Spool:
    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._conn: sqlite3.Connection | None = None
        self.bytes = 0
        self.count = 0

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(SCHEMA)
            self.count, self.bytes = conn.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM spool").fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open the spool: {exc}") from exc
        self._conn = conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @property
    def conn(self) -> sqlite3.Connection:
        assert self._conn is not None, "Spool.open() first"
        return self._conn

    def append(self, events: Sequence[tuple[str, bytes]]) -> int:
        """Store (id, msgpack bytes) pairs durably, in order; returns how many old events were dropped."""
        incoming = sum(len(blob) for _, blob in events)
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            dropped = self._make_room(incoming)
            conn.executemany(
                "INSERT INTO spool (id, size, event) VALUES (?, ?, ?)", [(i, len(b), b) for i, b in events]
            )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        self.count += len(events)
        self.bytes += incoming
        return dropped

    def _make_room(self, incoming: int) -> int:
        dropped = 0
        while self.count and self.bytes + incoming > self.max_bytes:
            rows = self.conn.execute("SELECT seq, size FROM spool ORDER BY seq LIMIT 256").fetchall()
            excess = self.bytes + incoming - self.max_bytes
            victims, freed = [], 0
            for seq, size in rows:
                if freed >= excess:
                    break
                victims.append((seq,))
                freed += size
            self.conn.executemany("DELETE FROM spool WHERE seq = ?", victims)
            self.count -= len(victims)
            self.bytes -= freed
            dropped += len(victims)
        return dropped

    def after(self, seq: int, limit: int) -> list[Spooled]:
        """Up to ``limit`` events after ``seq``, oldest first."""
        rows = self.conn.execute(
            "SELECT seq, id, event FROM spool WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)
        ).fetchall()
        return [Spooled(s, i, bytes(e)) for s, i, e in rows]

    def remove(self, ids: Sequence[str]) -> None:
        """Forget acknowledged events."""
        if not ids:
            return
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            sizes = []
            for start in range(0, len(ids), 500):
                chunk = list(ids[start : start + 500])
                marks = ",".join("?" * len(chunk))
                sizes += conn.execute(f"SELECT size FROM spool WHERE id IN ({marks})", chunk).fetchall()
                conn.execute(f"DELETE FROM spool WHERE id IN ({marks})", chunk)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        self.count -= len(sizes)
        self.bytes -= sum(s for (s,) in sizes)

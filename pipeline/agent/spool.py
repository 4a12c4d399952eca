"""The agent's on-disk spool: every event is written here before it is sent.

A SQLite file in the agent's data directory (WAL; a committed write survives the agent being
killed). Events are kept in arrival order with their id and msgpack bytes, sent from here,
and deleted when the backend acknowledges them; after a reconnect or a restart whatever is
still here is sent again, in order. The spool is bounded by bytes: when a write would exceed
``max_bytes`` the oldest events are dropped, and the caller is told how many, so that it can
count and log the loss.

Events that cannot be delivered (larger than the maximum event size, or refused by the backend
for good) are moved out of the way into the ``set_aside`` table of the same file, so that they
never hold up the events behind them; an operator lists them with ``GET /events/set-aside`` on
the agent API. That table is bounded too (:data:`SET_ASIDE_MAX_BYTES`, oldest dropped first).

Synchronous. The agent calls the hot steps (append a batch, read the next frame, remove the
acknowledged) on its event loop, not in a worker thread: with ``synchronous=NORMAL`` a WAL
commit is a ``write()`` without ``fsync`` (about 20 µs an event), while a thread hop costs
about 170 µs of CPU on two cores (``bench/agent_api.py``). The one step that syncs to disk,
copying the WAL into the database file, is no longer left to SQLite at the end of a commit
(``wal_autocheckpoint=0``): the agent runs :meth:`Spool.checkpoint` in a worker thread once
:attr:`Spool.wants_checkpoint`, as it does the rare steps (setting aside, listing). Every call
is one at a time on the one connection: a checkpoint with no write beside it copies the whole
WAL, so the next write starts the WAL over and the file stays near its bound (one running
beside writes, on a second connection, let the WAL grow without end).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import msgpack

from pipeline.errors import StoreError
from pipeline.sqlite_many import delete_keys, insert_rows
from pipeline.wire.limits import plan_frame

SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    size INTEGER NOT NULL,
    event BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS spool_by_id ON spool (id);
CREATE TABLE IF NOT EXISTS set_aside (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    at REAL NOT NULL,
    reason TEXT NOT NULL,
    error TEXT NOT NULL,
    entity TEXT NOT NULL,
    check_name TEXT NOT NULL,
    size INTEGER NOT NULL,
    event BLOB NOT NULL
);
"""

#: Bytes written to the WAL, roughly, after which a checkpoint is due (SQLite's own default is
#: 1,000 pages, 4 MiB).
CHECKPOINT_BYTES = 4 * 1024 * 1024
#: What one write transaction adds to the WAL besides the events' bytes (pages of the table, the
#: index, the sequence), roughly.
TRANSACTION_BYTES = 3 * 4096

#: Bytes of set-aside events kept; past that the oldest set-aside events are dropped.
SET_ASIDE_MAX_BYTES = 64 * 1024 * 1024


@dataclass(slots=True, frozen=True)
class Spooled:
    seq: int
    id: str
    event: bytes


@dataclass(slots=True)
class Frame:
    """The next events to send, and those too large to send at all (to be set aside)."""

    rows: list[Spooled] = field(default_factory=list)
    #: (id, size) of each
    too_large: list[tuple[str, int]] = field(default_factory=list)
    #: the spool position the frame reaches; the next frame starts after it
    last_seq: int = 0


@dataclass(slots=True, frozen=True)
class SetAside:
    """One event moved out of the way, as listed to the operator."""

    id: str
    at: float
    reason: str
    error: str
    entity: str
    check: str
    size: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _names(blob: bytes) -> tuple[str, str]:
    """The entity and check names of an event's msgpack bytes, as far as they can be read."""
    try:
        event = msgpack.unpackb(blob, raw=False)
    except (ValueError, msgpack.UnpackException):
        return "", ""

    def name(part: Any) -> str:
        meta = part.get("metadata") if isinstance(part, dict) else None
        value = meta.get("name", "") if isinstance(meta, dict) else ""
        return value if isinstance(value, str) else ""

    if not isinstance(event, dict):
        return "", ""
    return name(event.get("entity")), name(event.get("check"))


class Spool:
    def __init__(self, path: Path, max_bytes: int, set_aside_max_bytes: int = SET_ASIDE_MAX_BYTES) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.set_aside_max_bytes = set_aside_max_bytes
        self._conn: sqlite3.Connection | None = None
        self.bytes = 0
        self.count = 0
        #: bytes written to the WAL since the last checkpoint began, roughly
        self.unflushed = 0
        #: the seq of the last event appended (this connection is the spool's only writer)
        self.last_seq = 0

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(SCHEMA)
            self.count, self.bytes = conn.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM spool").fetchone()
            row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'spool'").fetchone()
            self.last_seq = row[0] if row else 0
            if self._on_disk:
                conn.execute("PRAGMA wal_autocheckpoint=0")  # see checkpoint()
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open the spool: {exc}") from exc
        self._conn = conn

    @property
    def _on_disk(self) -> bool:
        return str(self.path) != ":memory:"

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()  # the last connection: SQLite checkpoints and removes the WAL
            self._conn = None

    @property
    def wants_checkpoint(self) -> bool:
        """Whether enough was written since the last checkpoint to start one."""
        return self._on_disk and self.unflushed >= CHECKPOINT_BYTES

    def checkpoint(self) -> None:
        """Copy the WAL into the database file, syncing both: slow, so in a worker thread, like any
        other call one at a time. With no write beside it, it copies the whole WAL and the next
        write starts the WAL over from its beginning."""
        self.unflushed = 0
        if self._on_disk:
            try:
                self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: spool checkpoint failed: {exc}") from exc

    @property
    def conn(self) -> sqlite3.Connection:
        assert self._conn is not None, "Spool.open() first"
        return self._conn

    def append(self, events: Sequence[tuple[str, bytes]]) -> int:
        """Store (id, msgpack bytes) pairs durably, in order; returns how many old events were dropped."""
        return self.write(events)[1]

    def write(self, events: Sequence[tuple[str, bytes]]) -> tuple[list[Spooled], int]:
        """Store (id, msgpack bytes) pairs durably, in order, in one transaction; returns them as
        stored (with their seq) and how many old events were dropped to make room."""
        incoming = sum(len(blob) for _, blob in events)
        first = self.last_seq + 1
        rows = [Spooled(seq, i, b) for seq, (i, b) in enumerate(events, first)]
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            dropped = self._make_room(incoming)
            # The seqs given, not left to SQLite: the caller gets them without reading them back
            # (AUTOINCREMENT keeps sqlite_sequence at the largest, so a reopened spool goes on).
            insert_rows(conn, "INSERT INTO spool (seq, id, size, event)",
                        [(r.seq, r.id, len(r.event), r.event) for r in rows])  # fmt: skip
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        self.last_seq += len(rows)
        self.count += len(events)
        self.bytes += incoming
        self.unflushed += incoming + TRANSACTION_BYTES
        return rows, dropped

    def _make_room(self, incoming: int) -> int:
        dropped = 0
        while self.count and self.bytes + incoming > self.max_bytes:
            rows = self.conn.execute("SELECT seq, size FROM spool ORDER BY seq LIMIT 256").fetchall()
            excess = self.bytes + incoming - self.max_bytes
            victims, freed = [], 0
            for seq, size in rows:
                if freed >= excess:
                    break
                victims.append(seq)
                freed += size
            delete_keys(self.conn, "DELETE FROM spool WHERE seq", victims)
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
        self._delete("id", ids)

    def remove_seqs(self, seqs: Sequence[int]) -> None:
        """Forget acknowledged events by their seq (the sender knows it: no lookup by id)."""
        self._delete("seq", seqs)

    def _delete(self, column: str, keys: Sequence[Any]) -> None:
        if not keys:
            return
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            sizes = []
            for start in range(0, len(keys), 500):
                chunk = list(keys[start : start + 500])
                marks = ",".join("?" * len(chunk))
                sizes += conn.execute(f"DELETE FROM spool WHERE {column} IN ({marks}) RETURNING size", chunk).fetchall()
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        self.count -= len(sizes)
        freed = sum(s for (s,) in sizes)
        self.bytes -= freed
        self.unflushed += freed + TRANSACTION_BYTES  # the pages that held them are written again

    def next_frame(self, seq: int, max_count: int) -> Frame:
        """The events after ``seq`` that one ``events`` frame takes (by count and by bytes, see
        :func:`pipeline.wire.limits.plan_frame`), reading only their bytes."""
        heads = self.conn.execute(
            "SELECT seq, id, size FROM spool WHERE seq > ? ORDER BY seq LIMIT ?", (seq, max_count)
        ).fetchall()
        plan = plan_frame([size for _, _, size in heads], max_count=max_count)
        frame = Frame(too_large=[(heads[i][1], heads[i][2]) for i in plan.too_large])
        if plan.consumed:
            frame.last_seq = heads[plan.consumed - 1][0]
        if plan.send:
            seqs = [heads[i][0] for i in plan.send]
            rows = self.conn.execute(
                f"SELECT seq, id, event FROM spool WHERE seq IN ({','.join('?' * len(seqs))}) ORDER BY seq", seqs
            ).fetchall()
            frame.rows = [Spooled(s, i, bytes(e)) for s, i, e in rows]
        return frame

    def set_aside(self, entries: Sequence[tuple[str, str, str]], now: float) -> tuple[list[SetAside], int]:
        """Move spooled events (id, reason, error) into the set-aside table; returns what was
        moved and how many old set-aside events were dropped to make room."""
        moved: list[SetAside] = []
        freed = 0
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            for event_id, reason, error in entries:
                for seq, size, blob in conn.execute("SELECT seq, size, event FROM spool WHERE id = ?", (event_id,)):
                    moved.append(self._insert_aside(event_id, reason, error, bytes(blob), now))
                    conn.execute("DELETE FROM spool WHERE seq = ?", (seq,))
                    freed += size
            dropped = self._prune_aside()
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        self.count -= len(moved)
        self.bytes -= freed
        return moved, dropped

    def put_aside(self, entries: Sequence[tuple[str, str, str, bytes]], now: float) -> tuple[list[SetAside], int]:
        """Set aside events (id, reason, error, msgpack bytes) that never entered the spool."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            moved = [self._insert_aside(i, reason, error, blob, now) for i, reason, error, blob in entries]
            dropped = self._prune_aside()
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return moved, dropped

    def _insert_aside(self, event_id: str, reason: str, error: str, blob: bytes, now: float) -> SetAside:
        entity, check = _names(blob)
        record = SetAside(event_id, now, reason, error, entity, check, len(blob))
        self.conn.execute(
            "INSERT INTO set_aside (id, at, reason, error, entity, check_name, size, event)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (event_id, now, reason, error, entity, check, len(blob), blob),
        )
        return record

    def _prune_aside(self) -> int:
        """Drop the oldest set-aside events beyond the bound (the newest always stays)."""
        rows = self.conn.execute("SELECT seq, size FROM set_aside ORDER BY seq DESC").fetchall()
        kept, victims = 0, []
        for index, (seq, size) in enumerate(rows):
            kept += size
            if index and kept > self.set_aside_max_bytes:
                victims.append(seq)
        delete_keys(self.conn, "DELETE FROM set_aside WHERE seq", victims)
        return len(victims)

    def list_set_aside(self, limit: int = 100) -> list[SetAside]:
        """The set-aside events, newest first."""
        rows = self.conn.execute(
            "SELECT id, at, reason, error, entity, check_name, size FROM set_aside ORDER BY seq DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [SetAside(*row) for row in rows]

    def set_aside_event(self, event_id: str) -> bytes | None:
        """The msgpack bytes of one set-aside event."""
        row = self.conn.execute("SELECT event FROM set_aside WHERE id = ? ORDER BY seq DESC", (event_id,)).fetchone()
        return bytes(row[0]) if row else None

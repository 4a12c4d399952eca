"""The agent's on-disk spool: every event is written here before it is sent.

Events are kept in arrival order with their id and msgpack bytes, sent from here, and
forgotten when the backend acknowledges them; after a reconnect or a restart whatever is still
here is sent again, in order. They live in an append-only log of segment files in the agent's
data directory (``<data>/spool/``, :mod:`pipeline.agent.spool_log`): a write is one
``write(2)`` without ``fsync``, which survives the agent being killed, not the machine losing
power. The spool is bounded by bytes: when a write would exceed ``max_bytes`` the oldest events
are dropped, and the caller is told how many, so that it can count and log the loss.

Events that cannot be delivered (larger than the maximum event size, or refused by the backend
for good) are moved out of the way into the ``set_aside`` table of a SQLite file
(``<data>/spool.db``), so that they never hold up the events behind them; an operator lists them
with ``GET /events/set-aside`` on the agent API. That table is bounded too
(:data:`SET_ASIDE_MAX_BYTES`, oldest dropped first). Events an older version left in that
file's ``spool`` table are moved into the log when the spool opens.

Synchronous. The agent calls the hot steps (append a batch, read the next frame, remove the
acknowledged) on its event loop, not in a worker thread: an append costs a few microseconds,
a thread hop about 170 µs of CPU on two cores (``bench/agent_api.py``). The steps that sync to
disk (:meth:`Spool.sync`, once :attr:`Spool.wants_sync`: a full segment) and the
rare ones (setting aside, listing) it runs in a worker thread, one call at a time.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import msgpack

from pipeline.agent.spool_log import MAX_ID_BYTES, SpoolLog
from pipeline.errors import StoreError
from pipeline.logs import get_logger
from pipeline.sqlite_many import delete_keys
from pipeline.wire.limits import plan_frame

log = get_logger("agent.spool")

#: msgpack bytes, as the Spool names them (its ``bytes`` is a size).
Blob = bytes

SCHEMA = """
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

#: Bytes of set-aside events kept; past that the oldest set-aside events are dropped.
SET_ASIDE_MAX_BYTES = 64 * 1024 * 1024
#: Events an older version's spool table gives up at a time when moved into the log.
MIGRATE_ROWS = 500


@dataclass(slots=True, frozen=True)
class Spooled:
    seq: int
    id: str
    event: bytes


@dataclass(slots=True)
class Frame:
    """The next events to send, and those too large to send at all (to be set aside)."""

    rows: list[Spooled] = field(default_factory=list)
    #: (seq, size) of each
    too_large: list[tuple[int, int]] = field(default_factory=list)
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


def _movable(event_id: object, event: object) -> bool:
    """Whether an older spool's row is an event the log can hold: SQLite keeps whatever a column
    is given, and a damaged file may hold anything."""
    if not isinstance(event_id, str) or not isinstance(event, bytes):
        return False
    try:
        return 0 < len(event_id.encode()) <= MAX_ID_BYTES
    except UnicodeEncodeError:
        return False


class Spool:
    def __init__(self, path: Path, max_bytes: int, set_aside_max_bytes: int = SET_ASIDE_MAX_BYTES) -> None:
        """``path``: the SQLite file of set-aside events (``:memory:``: everything in memory);
        the log goes in the directory beside it named after its stem."""
        self.path = path
        self.max_bytes = max_bytes
        self.set_aside_max_bytes = set_aside_max_bytes
        self.log = SpoolLog(path.with_suffix("") if self._on_disk else None)
        self._conn: sqlite3.Connection | None = None
        #: segments the log found damaged at open (what follows the damage in each is lost)
        self.damaged_at_open = 0

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open the spool: {exc}") from exc
        self._conn = conn
        recovery = self.log.open()
        for file, offset, what in recovery.cut:
            log.warning("spool segment cut", file=file, offset=offset, problem=what)
        self.damaged_at_open = recovery.damaged
        self._migrate()

    def _migrate(self) -> None:
        """Move the events an older version left in the SQLite ``spool`` table into the log, in
        order (a stop in between sends some twice: the backend drops the second as a replay)."""
        conn = self.conn
        try:
            if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'spool'").fetchone() is None:
                return
            moved, skipped, after = 0, 0, -1
            while rows := conn.execute(
                "SELECT seq, id, event FROM spool WHERE seq > ? ORDER BY seq LIMIT ?", (after, MIGRATE_ROWS)
            ).fetchall():
                after = rows[-1][0]
                movable = [(i, e) for _, i, e in rows if _movable(i, e)]
                skipped += len(rows) - len(movable)
                first = self.log.last_seq + 1
                self.log.append([], [(seq, i, e) for seq, (i, e) in enumerate(movable, first)])
                moved += len(movable)
            conn.execute("DROP TABLE spool")
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot move the older spool's events: {exc}") from exc
        log.info("spool moved to its log", events=moved, file=str(self.path))
        if skipped:
            log.warning("older spool rows not moved: not an id and an event's bytes", rows=skipped,
                        file=str(self.path))  # fmt: skip

    @property
    def _on_disk(self) -> bool:
        return str(self.path) != ":memory:"

    def close(self) -> None:
        self.log.close()
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @property
    def count(self) -> int:
        return self.log.count

    @property
    def bytes(self) -> int:
        return self.log.bytes

    @property
    def wants_sync(self) -> bool:
        """Whether a segment is full and waits to be synced to disk."""
        return self.log.wants_sync

    def sync(self) -> None:
        """Sync the full segments to disk: slow, so in a worker thread, like any other call one
        at a time."""
        self.log.sync()

    @property
    def conn(self) -> sqlite3.Connection:
        assert self._conn is not None, "Spool.open() first"
        return self._conn

    def append(self, events: Sequence[tuple[str, Blob]]) -> int:
        """:meth:`write`, telling only how many old events were dropped."""
        return self.write(events)[1]

    def write(self, events: Sequence[tuple[str, Blob]]) -> tuple[list[Spooled], int]:
        """Store (id, msgpack bytes) pairs in order, in one write (it outlives the agent, not a
        power loss: see the module); returns them as stored (with their seq) and how many old
        events were dropped to make room."""
        victims = self._room_for(sum(len(blob) for _, blob in events))
        rows = [Spooled(seq, i, b) for seq, (i, b) in enumerate(events, self.log.last_seq + 1)]
        self.log.append(victims, [(r.seq, r.id, r.event) for r in rows])
        return rows, len(victims)

    def _room_for(self, incoming: int) -> list[int]:
        """The oldest events to drop so that ``incoming`` bytes fit."""
        excess = self.log.bytes + incoming - self.max_bytes
        victims: list[int] = []
        after = 0
        while excess > 0 and (seqs := self.log.after(after, 256)):
            for seq in seqs:
                if excess <= 0:
                    break
                victims.append(seq)
                excess -= self.log.size(seq)
            after = seqs[-1]
        return victims

    def after(self, seq: int, limit: int) -> list[Spooled]:
        """Up to ``limit`` events after ``seq``, oldest first."""
        return [Spooled(s, *self.log.read(s)) for s in self.log.after(seq, limit)]

    def remove_seqs(self, seqs: Sequence[int]) -> None:
        """Forget acknowledged events by their seq (the sender keeps it with each event it sent)."""
        self.log.remove(seqs)

    def next_frame(self, seq: int, max_count: int) -> Frame:
        """The events after ``seq`` that one ``events`` frame takes (by count and by bytes, see
        :func:`pipeline.wire.limits.plan_frame`), reading only their bytes."""
        heads = self.log.after(seq, max_count)
        plan = plan_frame([self.log.size(s) for s in heads], max_count=max_count)
        frame = Frame(too_large=[(heads[i], self.log.size(heads[i])) for i in plan.too_large])
        if plan.consumed:
            frame.last_seq = heads[plan.consumed - 1]
        frame.rows = [Spooled(heads[i], *self.log.read(heads[i])) for i in plan.send]
        return frame

    def set_aside(self, entries: Sequence[tuple[int, str, str]], now: float) -> tuple[list[SetAside], int]:
        """Move spooled events (seq, reason, error) into the set-aside table; returns what was
        moved and how many old set-aside events were dropped to make room."""
        moved: list[SetAside] = []
        seqs: list[int] = []
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            for seq, reason, error in entries:
                if self.log.queued(seq) and seq not in seqs:
                    event_id, blob = self.log.read(seq)
                    moved.append(self._insert_aside(event_id, reason, error, blob, now))
                    seqs.append(seq)
            dropped = self._prune_aside()
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        # After the commit: stopped in between, the event is sent once more, never lost.
        self.log.remove(seqs)
        return moved, dropped

    def put_aside(self, entries: Sequence[tuple[str, str, str, Blob]], now: float) -> tuple[list[SetAside], int]:
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

    def _insert_aside(self, event_id: str, reason: str, error: str, blob: Blob, now: float) -> SetAside:
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

    def set_aside_event(self, event_id: str) -> Blob | None:
        """The msgpack bytes of one set-aside event."""
        row = self.conn.execute("SELECT event FROM set_aside WHERE id = ? ORDER BY seq DESC", (event_id,)).fetchone()
        return bytes(row[0]) if row else None

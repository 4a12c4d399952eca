"""The SQLite store's connections: one writer (used by one thread at a time, under a lock) and
one reader per thread; WAL lets readers run while a batch is written (see
:mod:`pipeline.store.sqlite`)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.errors import StoreError, StoreRefused
from pipeline.store.sqlite_schema import SCHEMA, SCHEMA_VERSION, UPGRADABLE, add_deadlines
from pipeline.store.unreadable import Unreadable

#: Pages of WAL (4 KiB each) after which a commit copies them into the database file.
WAL_CHECKPOINT_PAGES = 10_000


class SQLiteConnections:
    #: one backend's file: check state is kept in its memory (a test may share the file)
    shared = False

    def __init__(self, path: Path, *, durable: bool = False, backend: str = "") -> None:
        self.path = path
        #: what names the store in logs and errors
        self.where = str(path)
        self.durable = durable
        #: the backend whose handler jobs this store writes (see :meth:`claim_jobs`)
        self.backend = backend
        self._writer: sqlite3.Connection | None = None
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._write_lock = threading.Lock()
        #: rows that no longer load, skipped where read; the store service counts them
        self.unreadable = Unreadable()

    # -- connections ---------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={'FULL' if self.durable else 'NORMAL'}")
            # WAL copied into the database every ~40 MiB, not SQLite's ~4 MiB: each copy rewrites
            # the same hot pages (the latest events, the log's index tails), so fewer, larger
            # checkpoints cost less per event (about 15 µs of 60 in a batch write's own SQLite
            # time, measured with the events and event_log tables at 1.4 KB an event).
            conn.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open the event store: {exc}") from exc
        return conn

    def open(self) -> None:
        self._writer = self._connect()
        try:
            # A statement that writes many rows (``insert_rows``) keeps a statement journal, to undo
            # itself alone if it fails: SQLite made it a file in /var/tmp, created, written (1.6
            # writes an event) and unlinked for every batch. In memory, it is the same undo log
            # (a crash is the WAL's business, not this one's): the store's thread wrote 6.1 -> 4.5
            # times an event and spent 25-30 -> 21-25 µs of CPU (bench/api_events.py, four clients).
            self._writer.execute("PRAGMA temp_store=MEMORY")
            self._writer.executescript(SCHEMA)
            add_deadlines(self._writer)
            row = self._writer.execute("SELECT version FROM schema_version").fetchone()
            if row is None:
                self._writer.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
            elif row[0] in UPGRADABLE:
                self._writer.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
            elif row[0] != SCHEMA_VERSION:
                raise StoreError(f"{self.path}: schema version {row[0]}, this pipeline reads {SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot create the schema: {exc}") from exc

    def close(self) -> None:
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except (sqlite3.IntegrityError, sqlite3.DataError, OverflowError) as exc:  # OverflowError: past int64
            raise StoreRefused(f"{self.path}: {action}: {exc}") from exc
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {action}: {exc}") from exc

    @contextmanager
    def _transaction(self, action: str) -> Iterator[sqlite3.Connection]:
        """The writer connection inside one transaction, for one thread at a time: the backend's
        services (event processor, liveness, API, pipeline) write from their own threads."""
        with self._write_lock, self._errors(action):
            conn = self._writer
            if conn is None:  # not opened yet, or closed under a task still running (a stop)
                raise StoreError(f"{self.path}: {action}: the store is closed")
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

"""Every store implementation, for the tests that hold for all of them (one parametrised
suite): a new empty store of each kind, another instance on the same database (a restart, or a
second backend), and SQL run on the database from outside (what an older version wrote)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from pipeline.store import EventStore, SQLiteStore
from pipeline.store.postgres import PostgresStore
from tests.pg_support import fresh_schema

KINDS = ["sqlite", "postgresql"]
#: Makes a new (unopened) store on the test's database, for the backend named by the argument.
StoreFactory = Callable[..., EventStore]


@contextmanager
def database(kind: str, tmp_path: Path, *, shared: bool = False) -> Iterator[StoreFactory]:
    """A new database of ``kind``; what makes stores on it (SQLite ones as a shared store if
    ``shared``: its one writer is the lock, as PostgreSQL's advisory locks are)."""
    if kind == "sqlite":
        path = tmp_path / "events.db"

        def sqlite(backend: str = "") -> EventStore:
            store = SQLiteStore(path, backend=backend)
            if shared:
                store.shared = True
            return store

        yield sqlite
        return
    with fresh_schema() as dsn:
        yield lambda backend="": PostgresStore(dsn, backend=backend)


@contextmanager
def opened(factory: StoreFactory, backend: str = "") -> Iterator[EventStore]:
    store = factory(backend)
    store.open()
    try:
        yield store
    finally:
        store.close()


@contextmanager
def raw_sql(store: EventStore) -> Iterator[Callable[..., Any]]:
    """Run SQL (``?`` placeholders) on ``store``'s database from outside, committed at the end."""
    if isinstance(store, SQLiteStore):
        conn = sqlite3.connect(store.path)
        yield conn.execute
        conn.commit()
        conn.close()
        return
    assert isinstance(store, PostgresStore)
    with psycopg.connect(store.dsn, autocommit=True) as pg:
        yield lambda sql, params=(): pg.execute(sql.replace("?", "%s"), params)

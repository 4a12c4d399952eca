"""The backends that share a store, in SQLite: each one's last heartbeat, and the revision of
each kind of record they all hold in memory (resources, silences, keys), which they poll.

Functions of a connection inside the caller's transaction (as :mod:`sqlite_outbox`). SQLite is
one machine's file, so the time of a beat is that machine's clock; PostgreSQL's store takes the
database server's, the one clock every backend agrees on.
"""

from __future__ import annotations

import sqlite3

from pipeline.core.cluster import Heartbeat

SCHEMA = """
CREATE TABLE IF NOT EXISTS backends (
    name TEXT PRIMARY KEY,
    beat REAL NOT NULL,
    api_url TEXT NOT NULL,
    transport TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS revisions (
    kind TEXT PRIMARY KEY,
    revision INTEGER NOT NULL
);
"""


def beat(conn: sqlite3.Connection, backend: Heartbeat, now: float) -> list[Heartbeat]:
    """Record ``backend``'s beat at ``now``; every backend's last beat, this one's included."""
    conn.execute(
        "INSERT INTO backends (name, beat, api_url, transport) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (name) DO UPDATE SET beat = excluded.beat, api_url = excluded.api_url,"
        " transport = excluded.transport",
        (backend.backend, now, backend.api_url, backend.transport),
    )
    rows = conn.execute("SELECT name, beat, api_url, transport FROM backends ORDER BY name").fetchall()
    return [Heartbeat(*row) for row in rows]


def leave(conn: sqlite3.Connection, name: str) -> None:
    conn.execute("DELETE FROM backends WHERE name = ?", (name,))


def bump(conn: sqlite3.Connection, kind: str) -> None:
    """Count a change of ``kind`` (resources, silences, keys), in the transaction that makes it."""
    conn.execute(
        "INSERT INTO revisions (kind, revision) VALUES (?, 1) ON CONFLICT (kind) DO UPDATE SET revision = revision + 1",
        (kind,),
    )


def revisions(conn: sqlite3.Connection) -> dict[str, int]:
    return {kind: int(revision) for kind, revision in conn.execute("SELECT kind, revision FROM revisions")}

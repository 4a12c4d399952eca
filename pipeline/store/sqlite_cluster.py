"""The backends that share a store, in SQLite: each one's last heartbeat.

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

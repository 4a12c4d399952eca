"""The backends that share a store, in SQLite: each one's last heartbeat, and the revision of
each kind of record they all hold in memory (resources, silences, keys), which they poll.

Functions of a connection inside the caller's transaction (as :mod:`sqlite_outbox`). SQLite is
one machine's file, so the time of a beat is that machine's clock; PostgreSQL's store takes the
database server's, the one clock every backend agrees on.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from pipeline.core.cluster import Connection, Heartbeat

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
CREATE TABLE IF NOT EXISTS connections (
    namespace TEXT NOT NULL,
    agent TEXT NOT NULL,
    backend TEXT NOT NULL,
    subscriptions TEXT NOT NULL,
    PRIMARY KEY (namespace, agent, backend)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS executions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    backend TEXT NOT NULL,
    request BLOB NOT NULL
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


def set_connections(conn: sqlite3.Connection, backend: str, agents: Sequence[Connection]) -> None:
    """The agents connected to ``backend`` are ``agents`` (each (namespace, agent, subscriptions))."""
    conn.execute("DELETE FROM connections WHERE backend = ?", (backend,))
    conn.executemany("INSERT OR REPLACE INTO connections VALUES (?, ?, ?, ?)",
                     [(ns, agent, backend, json.dumps(list(subs))) for ns, agent, subs in agents])  # fmt: skip


def connections(conn: sqlite3.Connection, since: float) -> list[tuple[str, str, str, list[str]]]:
    """(namespace, agent, backend, subscriptions) of the agents of backends that beat since ``since``."""
    rows = conn.execute(
        "SELECT c.namespace, c.agent, c.backend, c.subscriptions FROM connections c JOIN backends b"
        " ON b.name = c.backend WHERE b.beat >= ? ORDER BY c.namespace, c.agent, c.backend",
        (since,),
    ).fetchall()
    return [(ns, agent, backend, json.loads(subs)) for ns, agent, backend, subs in rows]


def put_executions(conn: sqlite3.Connection, requests: Sequence[tuple[str, bytes]]) -> None:
    conn.executemany("INSERT INTO executions (backend, request) VALUES (?, ?)", requests)


def take_executions(conn: sqlite3.Connection, backend: str, limit: int) -> list[bytes]:
    rows = conn.execute(
        "DELETE FROM executions WHERE seq IN (SELECT seq FROM executions WHERE backend = ? ORDER BY seq LIMIT ?)"
        " RETURNING seq, request",
        (backend, limit),
    ).fetchall()
    return [request for _, request in sorted(rows)]

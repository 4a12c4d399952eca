"""The SQLite store's tables, and which older versions of them upgrade in place."""

from __future__ import annotations

import sqlite3

from pipeline.store import sqlite_cluster, sqlite_outbox

SCHEMA_VERSION = 8
#: Older schema versions this one upgrades in place (2 added ``entities``, 3 ``dead_letters``,
#: 4 ``silenced``, 5 ``api_keys``, 6 ``resources``, 7 the outbox, 8 ``events.deadline``,
#: ``outbox.backend``, ``backends`` and ``revisions``).
UPGRADABLE = (1, 2, 3, 4, 5, 6, 7)

SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    namespace TEXT NOT NULL,
    entity TEXT NOT NULL,
    check_name TEXT NOT NULL,
    status INTEGER NOT NULL,
    timestamp INTEGER NOT NULL,
    id TEXT NOT NULL,
    event BLOB NOT NULL,
    deadline INTEGER,
    PRIMARY KEY (namespace, entity, check_name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS event_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    namespace TEXT NOT NULL,
    entity TEXT NOT NULL,
    check_name TEXT NOT NULL,
    status INTEGER NOT NULL,
    timestamp INTEGER NOT NULL,
    event BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS event_log_by_check ON event_log (namespace, entity, check_name, seq);
CREATE INDEX IF NOT EXISTS event_log_by_time ON event_log (namespace, timestamp, seq);
CREATE TABLE IF NOT EXISTS silenced (
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    entry BLOB NOT NULL,
    PRIMARY KEY (namespace, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS resources (
    kind TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    document BLOB,
    PRIMARY KEY (kind, namespace, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    digest TEXT NOT NULL UNIQUE,
    created INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS silenced_seeded (key TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS dead_letters (
    id TEXT PRIMARY KEY,
    created INTEGER NOT NULL,
    letter BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS entities (
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    entity BLOB NOT NULL,
    PRIMARY KEY (namespace, name)
) WITHOUT ROWID;
"""
    + sqlite_outbox.SCHEMA
    + sqlite_cluster.SCHEMA
)


def add_deadlines(conn: sqlite3.Connection) -> None:
    """Version 8: when each latest result is due a look (``pipeline.core.keepalive.stale_at``),
    indexed, and which backend holds each handler job; tables older than that get the columns
    (their rows no deadline until their next result, their jobs no backend: any may take them)."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(events)")}
    if "deadline" not in columns:
        conn.execute("ALTER TABLE events ADD COLUMN deadline INTEGER")
    if "backend" not in {row[1] for row in conn.execute("PRAGMA table_info(outbox)")}:
        conn.execute("ALTER TABLE outbox ADD COLUMN backend TEXT NOT NULL DEFAULT ''")
    conn.execute("CREATE INDEX IF NOT EXISTS events_by_deadline ON events (deadline) WHERE deadline IS NOT NULL")

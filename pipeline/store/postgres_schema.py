"""The PostgreSQL store's tables, as a list of migrations applied in order.

A database records the last migration applied in ``schema_version``. Each migration runs in
its own transaction, under an advisory lock, so that backends starting at the same moment on
a new database do not both migrate it: the second waits, then finds nothing left to do.
"""

from __future__ import annotations

#: Taken (transaction-scoped) while migrating: any constant the other locks cannot hash to.
MIGRATION_LOCK = 7_301_820_011

#: The statements of each version, in order; a new version is a new entry, never an edit.
MIGRATIONS: list[tuple[int, list[str]]] = [
    (
        1,
        [
            """CREATE TABLE events (
                namespace TEXT NOT NULL,
                entity TEXT NOT NULL,
                check_name TEXT NOT NULL,
                status INTEGER NOT NULL,
                timestamp BIGINT NOT NULL,
                id TEXT NOT NULL,
                event BYTEA NOT NULL,
                deadline BIGINT,
                PRIMARY KEY (namespace, entity, check_name)
            )""",
            "CREATE INDEX events_by_deadline ON events (deadline) WHERE deadline IS NOT NULL",
            """CREATE TABLE event_log (
                seq BIGSERIAL PRIMARY KEY,
                id TEXT NOT NULL UNIQUE,
                namespace TEXT NOT NULL,
                entity TEXT NOT NULL,
                check_name TEXT NOT NULL,
                status INTEGER NOT NULL,
                timestamp BIGINT NOT NULL,
                event BYTEA NOT NULL
            )""",
            "CREATE INDEX event_log_by_check ON event_log (namespace, entity, check_name, seq)",
            "CREATE INDEX event_log_by_time ON event_log (namespace, timestamp, seq)",
            """CREATE TABLE silenced (
                namespace TEXT NOT NULL, name TEXT NOT NULL, entry BYTEA NOT NULL, PRIMARY KEY (namespace, name)
            )""",
            "CREATE TABLE silenced_seeded (key TEXT PRIMARY KEY)",
            """CREATE TABLE resources (
                kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL, document BYTEA,
                PRIMARY KEY (kind, namespace, name)
            )""",
            """CREATE TABLE api_keys (
                id TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL, digest TEXT NOT NULL UNIQUE,
                created BIGINT NOT NULL
            )""",
            "CREATE TABLE dead_letters (id TEXT PRIMARY KEY, created BIGINT NOT NULL, letter BYTEA NOT NULL)",
            """CREATE TABLE entities (
                namespace TEXT NOT NULL, name TEXT NOT NULL, entity BYTEA NOT NULL, PRIMARY KEY (namespace, name)
            )""",
            """CREATE TABLE outbox (
                seq BIGSERIAL PRIMARY KEY, event_id TEXT NOT NULL, event BYTEA NOT NULL,
                backend TEXT NOT NULL DEFAULT ''
            )""",
            "CREATE INDEX outbox_by_backend ON outbox (backend, seq)",
            "CREATE TABLE outbox_done (seq BIGINT NOT NULL, workflow TEXT NOT NULL, PRIMARY KEY (seq, workflow))",
            """CREATE TABLE backends (
                name TEXT PRIMARY KEY, beat DOUBLE PRECISION NOT NULL, api_url TEXT NOT NULL, transport TEXT NOT NULL
            )""",
            "CREATE TABLE revisions (kind TEXT PRIMARY KEY, revision BIGINT NOT NULL)",
            """CREATE TABLE connections (
                namespace TEXT NOT NULL, agent TEXT NOT NULL, backend TEXT NOT NULL, subscriptions TEXT NOT NULL,
                PRIMARY KEY (namespace, agent, backend)
            )""",
            "CREATE TABLE executions (seq BIGSERIAL PRIMARY KEY, backend TEXT NOT NULL, request BYTEA NOT NULL)",
        ],
    ),
    (
        # A check's status is Sensu's uint32: INTEGER stops at 2^31 - 1, and one result above it
        # failed the write of its whole batch, again at every retry. Rewrites both tables, once.
        2,
        [
            "ALTER TABLE events ALTER COLUMN status TYPE BIGINT",
            "ALTER TABLE event_log ALTER COLUMN status TYPE BIGINT",
        ],
    ),
]

SCHEMA_VERSION = MIGRATIONS[-1][0]

"""The PostgreSQL store's connections: a psycopg-pool pool, the schema migrated at open, and
one transaction per call (see :mod:`pipeline.store.postgres`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import psycopg_pool
from psycopg import conninfo

from pipeline.errors import StoreError, StoreRefused
from pipeline.logs import get_logger
from pipeline.store.postgres_schema import MIGRATION_LOCK, MIGRATIONS
from pipeline.store.unreadable import Unreadable

#: What PostgreSQL says of the data rather than of itself: a constraint (or a trigger's ``RAISE
#: EXCEPTION``, the usual way to refuse a row), a value past its column, a Python int past int64.
_REFUSALS = (psycopg.IntegrityError, psycopg.DataError, psycopg.errors.RaiseException, OverflowError)

log = get_logger("store.postgres")

#: Connections the pool keeps at most: the store service's one writer and its readers, and one
#: spare for ``/health`` while they are busy.
POOL_SIZE = 6
#: Seconds to wait for a connection from the pool (or for the server at open) before failing.
CONNECT_TIMEOUT = 10.0


def redacted(dsn: str) -> str:
    """``dsn`` without its password, to name the database in errors and logs."""
    try:
        parts = conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "postgresql://(unparsable address)"
    user = f"{parts['user']}@" if parts.get("user") else ""
    port = f":{parts['port']}" if parts.get("port") else ""
    return f"postgresql://{user}{parts.get('host', '')}{port}/{parts.get('dbname', '')}"


class PostgresConnections:
    #: several backends may write it: check state is merged in it, under lock
    shared = True

    def __init__(self, dsn: str, *, backend: str = "", pool_size: int = POOL_SIZE) -> None:
        self.dsn = dsn
        self.where = redacted(dsn)
        #: the backend whose handler jobs, connections and executions this store writes
        self.backend = backend
        self._pool_size = pool_size
        self._pool: psycopg_pool.ConnectionPool | None = None
        #: rows that no longer load, skipped where read; the store service counts them
        self.unreadable = Unreadable()

    # -- connections ---------------------------------------------------------------------------

    def open(self) -> None:
        pool = psycopg_pool.ConnectionPool(
            self.dsn,
            min_size=1,
            max_size=self._pool_size,
            open=False,
            timeout=CONNECT_TIMEOUT,
            kwargs={"connect_timeout": int(CONNECT_TIMEOUT)},
        )
        try:
            pool.open(wait=True, timeout=CONNECT_TIMEOUT)
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            pool.close()
            raise StoreError(f"{self.where}: cannot connect to the event store: {exc}") from exc
        self._pool = pool
        with self._transaction("cannot create the schema") as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = conn.execute("SELECT version FROM schema_version").fetchone()
            current = 0 if row is None else int(row[0])
            if current > MIGRATIONS[-1][0]:
                raise StoreError(f"{self.where}: schema version {current}, this pipeline reads {MIGRATIONS[-1][0]}")
            if row is not None and current < MIGRATIONS[-1][0]:  # a rewrite of a large table takes a while
                log.info("migrating the PostgreSQL schema", store=self.where, version=current,
                         to_version=MIGRATIONS[-1][0])  # fmt: skip
            for version, statements in MIGRATIONS:
                if version > current:
                    for statement in statements:
                        conn.execute(statement)  # our own constant SQL
            if row is None:
                conn.execute("INSERT INTO schema_version VALUES (%s)", (MIGRATIONS[-1][0],))
            else:
                conn.execute("UPDATE schema_version SET version = %s", (MIGRATIONS[-1][0],))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    @contextmanager
    def _transaction(self, action: str) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection inside one transaction (committed at the end, rolled back on error)."""
        pool = self._pool
        if pool is None:
            raise StoreError(f"{self.where}: {action}: the store is closed")
        try:
            with pool.connection() as conn:
                yield conn
        except _REFUSALS as exc:  # the data, not the store
            raise StoreRefused(f"{self.where}: {action}: {exc}") from exc
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            raise StoreError(f"{self.where}: {action}: {exc}") from exc

    _read = _transaction

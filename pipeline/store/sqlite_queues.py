"""The SQLite store's queues and the backends that share it: handler jobs (the outbox),
heartbeats, revisions, connected agents and forwarded executions."""

from __future__ import annotations

import time
from collections.abc import Sequence

from pipeline.core.cluster import Connection, Heartbeat
from pipeline.model import Event
from pipeline.model.outbox import Completion, StoredJob
from pipeline.store import sqlite_cluster, sqlite_outbox
from pipeline.store.rows import pack
from pipeline.store.sqlite_base import SQLiteConnections


class SQLiteQueues(SQLiteConnections):
    # -- the outbox ----------------------------------------------------------------------------

    def put_jobs(self, events: Sequence[Event]) -> list[int]:
        jobs = [(event.id, pack(event)) for event in events]
        with self._transaction("cannot write handler jobs") as conn:
            return sqlite_outbox.put(conn, jobs, self.backend)

    def complete(self, completions: Sequence[Completion]) -> None:
        with self._transaction("cannot record handler work done") as conn:
            sqlite_outbox.complete(conn, completions)

    def pending_jobs(self, after: int, limit: int, backend: str | None = None) -> list[StoredJob]:
        with self._errors("cannot read the outbox"):
            return [StoredJob(*row) for row in sqlite_outbox.pending(self._reader(), after, limit, backend)]

    def claim_jobs(self, lease: float, limit: int) -> list[StoredJob]:
        with self._transaction("cannot take over handler jobs") as conn:
            rows = sqlite_outbox.claim(conn, self.backend, time.time() - lease, limit)
        return [StoredJob(*row) for row in rows]

    def count_jobs(self) -> int:
        with self._errors("cannot count the outbox"):
            return sqlite_outbox.count(self._reader())

    def last_job(self) -> int:
        with self._errors("cannot read the outbox"):
            return sqlite_outbox.last(self._reader())

    # -- the backends sharing the store ------------------------------------------------------

    def beat(self, backend: Heartbeat) -> list[Heartbeat]:
        with self._transaction("cannot record a heartbeat") as conn:
            return sqlite_cluster.beat(conn, backend, time.time())

    def leave(self, name: str) -> None:
        with self._transaction("cannot remove a backend") as conn:
            sqlite_cluster.leave(conn, name)

    def set_connections(self, agents: Sequence[Connection]) -> None:
        with self._transaction("cannot record the connected agents") as conn:
            sqlite_cluster.set_connections(conn, self.backend, agents)

    def connections(self, lease: float) -> list[tuple[str, str, str, list[str]]]:
        with self._errors("cannot read the connected agents"):
            return sqlite_cluster.connections(self._reader(), time.time() - lease)

    def put_executions(self, requests: Sequence[tuple[str, bytes]]) -> None:
        with self._transaction("cannot queue check executions") as conn:
            sqlite_cluster.put_executions(conn, requests)

    def take_executions(self, limit: int) -> list[bytes]:
        with self._transaction("cannot take check executions") as conn:
            return sqlite_cluster.take_executions(conn, self.backend, limit)

    def revisions(self) -> dict[str, int]:
        with self._errors("cannot read the revisions"):
            return sqlite_cluster.revisions(self._reader())

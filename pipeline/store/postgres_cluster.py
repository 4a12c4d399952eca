"""The PostgreSQL store's shared queues and the backends that share it: handler jobs (taken over
with ``FOR UPDATE SKIP LOCKED``), heartbeats on the server's clock, revisions, connected agents
and forwarded executions (see :mod:`pipeline.core.cluster`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import psycopg

from pipeline.core.cluster import Connection, Heartbeat
from pipeline.model import Event
from pipeline.model.outbox import Completion, StoredJob
from pipeline.store.postgres_base import PostgresConnections
from pipeline.store.rows import pack

#: The server's clock, in seconds: the one clock every backend agrees on.
NOW = "extract(epoch from clock_timestamp())"


class PostgresQueues(PostgresConnections):
    # -- the outbox ----------------------------------------------------------------------------

    def _put_jobs(self, conn: psycopg.Connection[Any], jobs: Sequence[tuple[str, bytes]]) -> list[int]:
        if not jobs:
            return []
        rows = conn.execute(  # the arrays in binary, as the events' (postgres._WRITE_EVENTS)
            "INSERT INTO outbox (event_id, event, backend) SELECT i, e, %s FROM"
            " unnest(%b::text[], %b::bytea[]) WITH ORDINALITY AS j(i, e, n) ORDER BY n RETURNING seq",
            (self.backend, [j[0] for j in jobs], [j[1] for j in jobs]),
        ).fetchall()
        return sorted(int(row[0]) for row in rows)  # a sequence: in the order inserted

    def put_jobs(self, events: Sequence[Event]) -> list[int]:
        with self._transaction("cannot write handler jobs") as conn:
            return self._put_jobs(conn, [(event.id, pack(event)) for event in events])

    def _with_done(self, conn: psycopg.Connection[Any], jobs: Sequence[Sequence[Any]]) -> list[StoredJob]:
        seqs = [int(job[0]) for job in jobs]
        done: dict[int, set[str]] = {}
        if seqs:
            for seq, workflow in conn.execute("SELECT seq, workflow FROM outbox_done WHERE seq = ANY(%s)", (seqs,)):
                done.setdefault(int(seq), set()).add(workflow)
        return [StoredJob(int(seq), bytes(blob), frozenset(done.get(int(seq), ()))) for seq, blob in jobs]

    def pending_jobs(self, after: int, limit: int, backend: str | None = None) -> list[StoredJob]:
        with self._read("cannot read the outbox") as conn:
            jobs = conn.execute(
                "SELECT seq, event FROM outbox WHERE seq > %s AND (%s::text IS NULL OR backend = %s)"
                " ORDER BY seq LIMIT %s",
                (after, backend, backend, limit),
            ).fetchall()
            return self._with_done(conn, jobs)

    def claim_jobs(self, lease: float, limit: int) -> list[StoredJob]:
        with self._transaction("cannot take over handler jobs") as conn:
            jobs = conn.execute(
                "UPDATE outbox SET backend = %(me)s WHERE seq IN (SELECT seq FROM outbox WHERE backend <> %(me)s AND"
                f" backend NOT IN (SELECT name FROM backends WHERE beat >= {NOW} - %(lease)s)"
                " ORDER BY seq LIMIT %(limit)s FOR UPDATE SKIP LOCKED) RETURNING seq, event",
                {"me": self.backend, "lease": lease, "limit": limit},
            ).fetchall()
            return self._with_done(conn, sorted(jobs))

    def complete(self, completions: Sequence[Completion]) -> None:
        ran = [(c.seq, c.workflow) for c in completions if c.workflow is not None]
        finished = [c.seq for c in completions if c.workflow is None]
        with self._transaction("cannot record handler work done") as conn:
            if ran:
                with conn.cursor() as cursor:
                    cursor.executemany("INSERT INTO outbox_done VALUES (%s, %s) ON CONFLICT DO NOTHING", ran)
            if finished:
                conn.execute("DELETE FROM outbox WHERE seq = ANY(%s)", (finished,))
                conn.execute("DELETE FROM outbox_done WHERE seq = ANY(%s)", (finished,))

    def count_jobs(self) -> int:
        with self._read("cannot count the outbox") as conn:
            row = conn.execute("SELECT COUNT(*) FROM outbox").fetchone()
        return int(row[0]) if row else 0

    def last_job(self) -> int:
        with self._read("cannot read the outbox") as conn:
            row = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM outbox").fetchone()
        return int(row[0]) if row else 0

    # -- the backends sharing the store --------------------------------------------------------

    def beat(self, backend: Heartbeat) -> list[Heartbeat]:
        with self._transaction("cannot record a heartbeat") as conn:
            conn.execute(
                f"INSERT INTO backends VALUES (%s, {NOW}, %s, %s) ON CONFLICT (name) DO UPDATE"
                " SET beat = excluded.beat, api_url = excluded.api_url, transport = excluded.transport",
                (backend.backend, backend.api_url, backend.transport),
            )
            rows = conn.execute("SELECT name, beat, api_url, transport FROM backends ORDER BY name").fetchall()
        return [Heartbeat(*row) for row in rows]

    def leave(self, name: str) -> None:
        with self._transaction("cannot remove a backend") as conn:
            conn.execute("DELETE FROM backends WHERE name = %s", (name,))

    def revisions(self) -> dict[str, int]:
        with self._read("cannot read the revisions") as conn:
            return {kind: int(rev) for kind, rev in conn.execute("SELECT kind, revision FROM revisions")}

    def set_connections(self, agents: Sequence[Connection]) -> None:
        with self._transaction("cannot record the connected agents") as conn:
            conn.execute("DELETE FROM connections WHERE backend = %s", (self.backend,))
            with conn.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO connections VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    [(ns, agent, self.backend, json.dumps(list(subs))) for ns, agent, subs in agents],
                )

    def connections(self, lease: float) -> list[tuple[str, str, str, list[str]]]:
        with self._read("cannot read the connected agents") as conn:
            rows = conn.execute(
                "SELECT c.namespace, c.agent, c.backend, c.subscriptions FROM connections c JOIN backends b ON"
                f" b.name = c.backend WHERE b.beat >= {NOW} - %s ORDER BY c.namespace, c.agent, c.backend",
                (lease,),
            ).fetchall()
        return [(ns, agent, backend, json.loads(subs)) for ns, agent, backend, subs in rows]

    def put_executions(self, requests: Sequence[tuple[str, bytes]]) -> None:
        with self._transaction("cannot queue check executions") as conn, conn.cursor() as cursor:
            cursor.executemany("INSERT INTO executions (backend, request) VALUES (%s, %s)", requests)

    def take_executions(self, limit: int) -> list[bytes]:
        with self._transaction("cannot take check executions") as conn:
            rows = conn.execute(
                "DELETE FROM executions WHERE seq IN (SELECT seq FROM executions WHERE backend = %s ORDER BY seq"
                " LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING seq, request",
                (self.backend, limit),
            ).fetchall()
        return [bytes(request) for _, request in sorted(rows)]

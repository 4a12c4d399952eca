"""The PostgreSQL event store: for several backends sharing one database.

psycopg 3 (its blocking API: the store service runs every call in a worker thread, as it does
SQLite's) over a psycopg-pool connection pool. The records and their meaning are SQLite's
(:mod:`pipeline.store.base`); what differs is that other backends write the same tables at the
same moment, so check state is merged under a per-check advisory lock, handler jobs are taken
over with ``FOR UPDATE SKIP LOCKED``, and every time that backends compare (heartbeats) is the
database server's clock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from typing import Any

import msgpack
import psycopg

from pipeline.core.keepalive import stale_at
from pipeline.model import DEFAULT_NAMESPACE, Check, Entity, Event
from pipeline.model.apikey import StoredKey
from pipeline.model.codec import encode
from pipeline.model.deadletter import DeadLetter
from pipeline.model.pipeline import Silenced
from pipeline.store import postgres_records as records
from pipeline.store.base import KEYS, RESOURCES, SILENCES, CheckKey, Merge, TimelineQuery, check_key, merge_in_order
from pipeline.store.postgres_base import redacted
from pipeline.store.postgres_cluster import PostgresQueues
from pipeline.store.rows import EventRow, event_row, pack, refuse_rows_with_merge

__all__ = ["PostgresStore", "redacted"]

#: A batch's check events, in one statement (one round trip whatever the batch): appended to the
#: event log in order, and each check's last one made its latest (DISTINCT ON: a statement may
#: not update a row twice). The arrays go in PostgreSQL's binary format (``%b``): in text, psycopg
#: escaped each event's bytes into an array literal (a regular expression an element) and the
#: server parsed it back, for 4,000 events in batches of 500 10,500-11,000 events/s against
#: 12,900-15,800 in binary (``bench/store_postgres.py``, synchronous_commit=off).
_WRITE_EVENTS = """
WITH batch AS (
    SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::bigint[], %b::bigint[], %b::text[], %b::bytea[],
                         %b::bigint[]) WITH ORDINALITY AS b(namespace, entity, check_name, status, timestamp, id, event,
                                                           deadline, n)
), latest AS (
    INSERT INTO events (namespace, entity, check_name, status, timestamp, id, event, deadline)
    SELECT DISTINCT ON (namespace, entity, check_name) namespace, entity, check_name, status, timestamp, id, event,
        deadline FROM batch ORDER BY namespace, entity, check_name, n DESC
    ON CONFLICT (namespace, entity, check_name) DO UPDATE SET status = excluded.status,
        timestamp = excluded.timestamp, id = excluded.id, event = excluded.event, deadline = excluded.deadline
)
INSERT INTO event_log (namespace, entity, check_name, status, timestamp, id, event)
SELECT namespace, entity, check_name, status, timestamp, id, event FROM batch ORDER BY n ON CONFLICT (id) DO NOTHING
"""
_EVENT_KEY = ("namespace", "entity", "check")


def check_lock(key: CheckKey) -> int:
    """The advisory lock of a check: 64 bits of a hash of its key, as PostgreSQL's signed bigint."""
    digest = hashlib.blake2b("\0".join(key).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class PostgresStore(PostgresQueues):
    """Events, entities, dead letters, silences, keys and resources (the queues and the
    connections: its base classes)."""

    # -- events --------------------------------------------------------------------------------

    def write_batch(
        self,
        events: Sequence[Event],
        outbox: Sequence[Event] = (),
        *,
        merge: Merge | None = None,
        rows: Sequence[EventRow] | None = None,
    ) -> list[int]:
        refuse_rows_with_merge(rows, merge)
        checks = [event for event in events if event.check is not None]
        if not checks and not outbox:
            return []
        with self._transaction("cannot write events") as conn:
            dropped: set[int] = set()
            if merge is not None and checks:
                dropped = self._merge(conn, checks, merge)
                checks = [event for event in checks if id(event) not in dropped]
            if rows is None:
                rows = [event_row(event) for event in checks]
            if rows:
                deadlines = [stale_at(e.check) if e.check else None for e in checks]
                conn.execute(_WRITE_EVENTS, [list(column) for column in zip(*rows, strict=True)] + [deadlines])
            packed = {id(event): row[6] for event, row in zip(checks, rows, strict=True) if event.metrics is None}
            kept = [event for event in outbox if id(event) not in dropped]
            seqs = iter(self._put_jobs(conn, [(e.id, packed.get(id(e)) or pack(e)) for e in kept]))
            return [0 if id(event) in dropped else next(seqs) for event in outbox]

    def _merge(self, conn: psycopg.Connection[Any], checks: Sequence[Event], merge: Merge) -> set[int]:
        """Lock every check of the batch (in one order: no deadlock between backends), read each
        one's latest result, merge the batch's events in order; the ``id()`` of those dropped."""
        keys = sorted({check_key(event) for event in checks})
        locks = sorted({check_lock(key) for key in keys})
        conn.execute(
            "SELECT pg_advisory_xact_lock(k) FROM (SELECT unnest(%s::bigint[]) AS k ORDER BY k) AS l", (locks,)
        )
        found = conn.execute(
            "SELECT namespace, entity, check_name, event FROM events WHERE (namespace, entity, check_name) IN"
            " (SELECT * FROM unnest(%s::text[], %s::text[], %s::text[]))",
            ([k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys]),
        ).fetchall()
        latest: dict[CheckKey, Check | None] = dict.fromkeys(keys)
        for row in found:
            loaded = self.unreadable.decode_rows("event", _EVENT_KEY, [row], records.event)
            latest[(row[0], row[1], row[2])] = loaded[0].check if loaded else None
        return merge_in_order(checks, latest, merge)

    def known_ids(self, ids: Collection[str]) -> set[str]:
        with self._read("cannot look up event ids") as conn:
            rows = conn.execute("SELECT id FROM event_log WHERE id = ANY(%s)", (list(ids),)).fetchall()
        return {row[0] for row in rows}

    def _events(self, rows: Sequence[Sequence[Any]]) -> list[Event]:
        return self.unreadable.decode_rows("event", _EVENT_KEY, rows, records.event)

    def get_event(self, namespace: str, entity: str, check: str) -> Event | None:
        with self._read("cannot read an event") as conn:
            rows = conn.execute(
                "SELECT namespace, entity, check_name, event FROM events WHERE namespace = %s"
                " AND entity = %s AND check_name = %s",
                (namespace, entity, check),
            ).fetchall()
        found = self._events(rows)
        return found[0] if found else None

    def list_events(self, namespace: str | None = None, entity: str | None = None) -> list[Event]:
        with self._read("cannot list events") as conn:
            rows = conn.execute(
                "SELECT namespace, entity, check_name, event FROM events WHERE (%(ns)s::text IS NULL OR namespace ="
                " %(ns)s) AND (%(entity)s::text IS NULL OR entity = %(entity)s) ORDER BY namespace, entity, check_name",
                {"ns": namespace, "entity": entity},
            ).fetchall()
        return self._events(rows)

    def latest_checks(self) -> dict[CheckKey, Check]:
        with self._read("cannot load check state") as conn:
            rows = conn.execute("SELECT namespace, entity, check_name, event FROM events").fetchall()
        keyed = [(*row[:3], row) for row in rows]
        loaded = self.unreadable.decode_rows("event", _EVENT_KEY, keyed, lambda r: (r[:3], records.event(r[3])))
        return {key: event.check for key, event in loaded if event.check is not None}

    def delete_event(self, namespace: str, entity: str, check: str) -> bool:
        with self._transaction("cannot delete an event") as conn:
            cursor = conn.execute(
                "DELETE FROM events WHERE namespace = %s AND entity = %s AND check_name = %s",
                (namespace, entity, check),
            )
        return cursor.rowcount > 0

    def event_log(self, namespace: str, entity: str, check: str, limit: int = 100) -> list[Event]:
        with self._read("cannot read the event log") as conn:
            rows = conn.execute(
                "SELECT seq, event FROM event_log WHERE namespace = %s AND entity = %s AND"
                " check_name = %s ORDER BY seq DESC LIMIT %s",
                (namespace, entity, check, limit),
            ).fetchall()
        return self.unreadable.decode_rows("logged event", ("seq",), rows, records.event)

    def count_log(self) -> int:
        with self._read("cannot count the event log") as conn:
            row = conn.execute("SELECT COUNT(*) FROM event_log").fetchone()
        return int(row[0]) if row else 0

    def timeline(self, query: TimelineQuery) -> tuple[list[Event], str]:
        clauses, params = records.timeline_clauses(query)
        sql = (
            f"SELECT seq, timestamp, event FROM event_log WHERE {' AND '.join(clauses)}"
            " ORDER BY timestamp, seq LIMIT %s"
        )
        with self._read("cannot read the timeline") as conn:
            rows = conn.execute(sql, [*params, query.limit + 1]).fetchall()
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        cursor = f"{rows[-1][1]}:{rows[-1][0]}" if more and rows else ""
        events = self.unreadable.decode_rows("logged event", ("seq",), [(r[0], r[2]) for r in rows], records.event)
        return events, cursor

    def due_checks(self, now: int, limit: int) -> list[CheckKey]:
        with self._read("cannot read what is due") as conn:
            rows = conn.execute(
                "SELECT namespace, entity, check_name FROM events WHERE deadline <= %s ORDER BY deadline LIMIT %s",
                (now, limit),
            ).fetchall()
        return [(r[0], r[1], r[2]) for r in rows]

    # -- entities, dead letters, silences, keys, resources -------------------------------------

    def put_entity(self, entity: Entity) -> bool:
        blob = msgpack.packb(encode(entity), use_bin_type=True)
        with self._transaction("cannot store an entity") as conn:
            row = conn.execute(
                "INSERT INTO entities VALUES (%s, %s, %s) ON CONFLICT (namespace, name) DO UPDATE"
                " SET entity = excluded.entity RETURNING (xmax = 0)",
                (entity.metadata.namespace or DEFAULT_NAMESPACE, entity.name, blob),
            ).fetchone()
        return bool(row and row[0])

    def add_entity(self, entity: Entity) -> bool:
        blob = msgpack.packb(encode(entity), use_bin_type=True)
        with self._transaction("cannot store an entity") as conn:
            cursor = conn.execute(
                "INSERT INTO entities VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                (entity.metadata.namespace or DEFAULT_NAMESPACE, entity.name, blob),
            )
        return cursor.rowcount > 0

    def delete_entity(self, namespace: str, name: str) -> list[Event]:
        with self._transaction("cannot delete an entity") as conn:
            rows = conn.execute(
                "DELETE FROM events WHERE namespace = %s AND entity = %s"
                " RETURNING namespace, entity, check_name, event",
                (namespace, name),
            ).fetchall()
            conn.execute("DELETE FROM entities WHERE namespace = %s AND name = %s", (namespace, name))
        return self._events(sorted(rows, key=lambda r: r[2]))

    def get_entity(self, namespace: str, name: str) -> Entity | None:
        with self._read("cannot read an entity") as conn:
            rows = conn.execute(
                "SELECT namespace, name, entity FROM entities WHERE namespace = %s AND name = %s", (namespace, name)
            ).fetchall()
        found = self.unreadable.decode_rows("entity", ("namespace", "entity"), rows, records.entity)
        return found[0] if found else None

    def list_entities(self, namespace: str | None = None) -> list[Entity]:
        with self._read("cannot list entities") as conn:
            rows = conn.execute(
                "SELECT namespace, name, entity FROM entities WHERE (%(ns)s::text IS NULL OR"
                " namespace = %(ns)s) ORDER BY namespace, name",
                {"ns": namespace},
            ).fetchall()
        return self.unreadable.decode_rows("entity", ("namespace", "entity"), rows, records.entity)

    def put_dead_letter(self, letter: DeadLetter) -> None:
        blob = msgpack.packb(encode(letter), use_bin_type=True)
        with self._transaction("cannot store a dead letter") as conn:
            conn.execute(
                "INSERT INTO dead_letters VALUES (%s, %s, %s) ON CONFLICT (id) DO UPDATE"
                " SET created = excluded.created, letter = excluded.letter",
                (letter.id, letter.created, blob),
            )

    def delete_dead_letter(self, letter_id: str) -> bool:
        with self._transaction("cannot delete a dead letter") as conn:
            cursor = conn.execute("DELETE FROM dead_letters WHERE id = %s", (letter_id,))
        return cursor.rowcount > 0

    def list_dead_letters(self) -> list[DeadLetter]:
        with self._read("cannot list dead letters") as conn:
            rows = conn.execute("SELECT id, letter FROM dead_letters ORDER BY created, id").fetchall()
        return self.unreadable.decode_rows("dead letter", ("letter",), rows, records.dead_letter)

    def get_dead_letter(self, letter_id: str) -> DeadLetter | None:
        with self._read("cannot read a dead letter") as conn:
            rows = conn.execute("SELECT id, letter FROM dead_letters WHERE id = %s", (letter_id,)).fetchall()
        found = self.unreadable.decode_rows("dead letter", ("letter",), rows, records.dead_letter)
        return found[0] if found else None

    def _bump(self, conn: psycopg.Connection[Any], kind: str) -> None:
        conn.execute(
            "INSERT INTO revisions VALUES (%s, 1) ON CONFLICT (kind) DO UPDATE SET revision = revisions.revision + 1",
            (kind,),
        )

    def _put_silence(self, conn: psycopg.Connection[Any], entry: Silenced) -> None:
        conn.execute(
            "INSERT INTO silenced VALUES (%s, %s, %s) ON CONFLICT (namespace, name) DO UPDATE"
            " SET entry = excluded.entry",
            (
                entry.metadata.namespace or DEFAULT_NAMESPACE,
                entry.metadata.name,
                msgpack.packb(encode(entry), use_bin_type=True),
            ),
        )

    def put_silence(self, entry: Silenced) -> None:
        with self._transaction("cannot store a silence") as conn:
            self._bump(conn, SILENCES)
            self._put_silence(conn, entry)

    def delete_silence(self, namespace: str, name: str) -> bool:
        with self._transaction("cannot delete a silence") as conn:
            self._bump(conn, SILENCES)
            cursor = conn.execute("DELETE FROM silenced WHERE namespace = %s AND name = %s", (namespace, name))
        return cursor.rowcount > 0

    def seed_silences(self, entries: Sequence[tuple[str, Silenced]]) -> list[Silenced]:
        created = []
        with self._transaction("cannot seed silences") as conn:
            for key, entry in entries:
                cursor = conn.execute("INSERT INTO silenced_seeded VALUES (%s) ON CONFLICT DO NOTHING", (key,))
                if cursor.rowcount:
                    self._put_silence(conn, entry)
                    created.append(entry)
            if created:
                self._bump(conn, SILENCES)
        return created

    def list_silences(self) -> list[Silenced]:
        with self._read("cannot list silences") as conn:
            rows = conn.execute("SELECT namespace, name, entry FROM silenced ORDER BY namespace, name").fetchall()
        return self.unreadable.decode_rows("silence", ("namespace", "silence"), rows, records.silence)

    def put_api_key(self, key: StoredKey) -> None:
        with self._transaction("cannot store an API key") as conn:
            self._bump(conn, KEYS)
            conn.execute(
                "INSERT INTO api_keys VALUES (%s, %s, %s, %s, %s)",
                (key.id, key.name, key.role, key.digest, key.created),
            )

    def delete_api_key(self, key_id: str) -> bool:
        with self._transaction("cannot delete an API key") as conn:
            self._bump(conn, KEYS)
            cursor = conn.execute("DELETE FROM api_keys WHERE id = %s", (key_id,))
        return cursor.rowcount > 0

    def list_api_keys(self) -> list[StoredKey]:
        with self._read("cannot list API keys") as conn:
            rows = conn.execute("SELECT id, name, role, digest, created FROM api_keys ORDER BY created").fetchall()
        return [StoredKey(*row) for row in rows]

    def put_resource(self, kind: str, namespace: str, name: str, document: bytes | None) -> None:
        self.put_resources([(kind, namespace, name, document)])

    def put_resources(self, changes: list[tuple[str, str, str, bytes | None]]) -> None:
        with self._transaction("cannot store resources") as conn:
            self._bump(conn, RESOURCES)
            with conn.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO resources VALUES (%s, %s, %s, %s) ON CONFLICT (kind, namespace, name)"
                    " DO UPDATE SET document = excluded.document",
                    changes,
                )

    def forget_resource(self, kind: str, namespace: str, name: str) -> bool:
        with self._transaction("cannot forget a resource change") as conn:
            self._bump(conn, RESOURCES)
            cursor = conn.execute(
                "DELETE FROM resources WHERE kind = %s AND namespace = %s AND name = %s", (kind, namespace, name)
            )
        return cursor.rowcount > 0

    def list_resources(self) -> list[tuple[str, str, str, bytes | None]]:
        with self._read("cannot list resources") as conn:
            rows = conn.execute("SELECT kind, namespace, name, document FROM resources").fetchall()
        return [(r[0], r[1], r[2], None if r[3] is None else bytes(r[3])) for r in rows]

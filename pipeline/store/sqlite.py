"""The SQLite event store: the embedded default.

One writer connection (used by one thread at a time, under a lock) and one reader connection
per thread. WAL mode lets readers run while a batch is written.
With ``synchronous=NORMAL`` a committed batch survives the process being killed; a power
loss may lose the last commits. ``durable=True`` selects ``synchronous=FULL``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Sequence

import msgpack

from pipeline.core.keepalive import stale_at
from pipeline.errors import StoreError, ValidationError
from pipeline.logs import get_logger
from pipeline.model import DEFAULT_NAMESPACE, Check, Entity, Event
from pipeline.model.apikey import StoredKey
from pipeline.model.codec import decode, encode
from pipeline.model.deadletter import DeadLetter
from pipeline.model.pipeline import Silenced
from pipeline.sqlite_many import insert_rows
from pipeline.store import sqlite_cluster, sqlite_outbox
from pipeline.store.base import KEYS, RESOURCES, SILENCES, CheckKey, Merge, TimelineQuery, check_key, merge_in_order
from pipeline.store.rows import EventRow, event_row, pack, refuse_rows_with_merge
from pipeline.store.sqlite_queues import SQLiteQueues

log = get_logger("store.sqlite")

#: The columns that name a row of ``events``, in the order the queries select them.
_EVENT_KEY = ("namespace", "entity", "check")


def _decode_silence(blob: bytes) -> Silenced:
    return decode(Silenced, msgpack.unpackb(blob, raw=False), "silenced")


#: SQLite's default limit on host parameters is 32766 in recent versions; stay well below.
_ID_CHUNK = 500


class SQLiteStore(SQLiteQueues):
    """Events, entities, dead letters, silences, keys and resources (the queues and the
    connections: its base classes)."""

    # -- writes --------------------------------------------------------------------------------

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
            if merge is not None:  # BEGIN IMMEDIATE holds every other writer off: the lock
                dropped = self._merge(conn, checks, merge)
                checks = [event for event in checks if id(event) not in dropped]
            if rows is None:
                rows = [event_row(event) for event in checks]
            # A check event without metrics is stored whole: its job reuses those bytes instead of
            # packing the event a second time (a third of the outbox's cost per event).
            packed = {id(event): row[6] for event, row in zip(checks, rows, strict=True) if event.metrics is None}
            kept = [event for event in outbox if id(event) not in dropped]
            jobs = [(event.id, packed.get(id(event)) or pack(event)) for event in kept]
            insert_rows(
                conn,
                "INSERT OR REPLACE INTO events (namespace, entity, check_name, status, timestamp, id, event, deadline)",
                [(*row, stale_at(e.check) if e.check else None) for e, row in zip(checks, rows, strict=True)],
            )
            insert_rows(conn, "INSERT OR IGNORE INTO event_log (namespace, entity, check_name, status, timestamp, id,"
                        " event)", rows)  # fmt: skip
            job_rows = iter(sqlite_outbox.put(conn, jobs, self.backend))
            return [0 if id(event) in dropped else next(job_rows) for event in outbox]

    def _merge(self, conn: sqlite3.Connection, checks: Sequence[Event], merge: Merge) -> set[int]:
        """Merge each check event with its check's latest stored result, in order; the ``id()``
        of the events the merge dropped."""
        latest: dict[CheckKey, Check | None] = {}
        for key in dict.fromkeys(check_key(event) for event in checks):
            row = conn.execute(
                "SELECT event FROM events WHERE namespace = ? AND entity = ? AND check_name = ?", key
            ).fetchone()
            # one that no longer loads is skipped (counted) as everywhere: the result starts afresh
            found = [] if row is None else self._events([(*key, row[0])])
            latest[key] = found[0].check if found else None
        return merge_in_order(checks, latest, merge)

    def delete_event(self, namespace: str, entity: str, check: str) -> bool:
        with self._transaction("cannot delete an event") as conn:
            cursor = conn.execute(
                "DELETE FROM events WHERE namespace = ? AND entity = ? AND check_name = ?", (namespace, entity, check)
            )
        return cursor.rowcount > 0

    def put_entity(self, entity: Entity) -> bool:
        """Store (or replace) an entity; True when it was not stored before (a registration)."""
        namespace = entity.metadata.namespace or DEFAULT_NAMESPACE
        blob = msgpack.packb(encode(entity), use_bin_type=True)
        with self._transaction("cannot store an entity") as conn:
            known = conn.execute(
                "SELECT 1 FROM entities WHERE namespace = ? AND name = ?", (namespace, entity.name)
            ).fetchone()
            conn.execute("INSERT OR REPLACE INTO entities VALUES (?, ?, ?)", (namespace, entity.name, blob))
        return known is None

    def add_entity(self, entity: Entity) -> bool:
        """Store an entity unless one of that name is stored; True when it was added."""
        namespace = entity.metadata.namespace or DEFAULT_NAMESPACE
        blob = msgpack.packb(encode(entity), use_bin_type=True)
        with self._transaction("cannot store an entity") as conn:
            cursor = conn.execute("INSERT OR IGNORE INTO entities VALUES (?, ?, ?)", (namespace, entity.name, blob))
        return cursor.rowcount > 0

    def delete_entity(self, namespace: str, name: str) -> list[Event]:
        """Remove an entity and its latest events (the event log keeps its past); returns the events."""
        with self._transaction("cannot delete an entity") as conn:
            rows = conn.execute(
                "SELECT namespace, entity, check_name, event FROM events WHERE namespace = ? AND entity = ?"
                " ORDER BY check_name",
                (namespace, name),
            ).fetchall()
            conn.execute("DELETE FROM events WHERE namespace = ? AND entity = ?", (namespace, name))
            conn.execute("DELETE FROM entities WHERE namespace = ? AND name = ?", (namespace, name))
        return self._events(rows)

    def put_dead_letter(self, letter: DeadLetter) -> None:
        """Store (or update) a dead letter."""
        blob = msgpack.packb(encode(letter), use_bin_type=True)
        with self._transaction("cannot store a dead letter") as conn:
            conn.execute("INSERT OR REPLACE INTO dead_letters VALUES (?, ?, ?)", (letter.id, letter.created, blob))

    def delete_dead_letter(self, letter_id: str) -> bool:
        with self._transaction("cannot delete a dead letter") as conn:
            cursor = conn.execute("DELETE FROM dead_letters WHERE id = ?", (letter_id,))
        return cursor.rowcount > 0

    def put_silence(self, entry: Silenced) -> None:
        blob = msgpack.packb(encode(entry), use_bin_type=True)
        with self._transaction("cannot store a silence") as conn:
            sqlite_cluster.bump(conn, SILENCES)
            conn.execute("INSERT OR REPLACE INTO silenced VALUES (?, ?, ?)",
                         (entry.metadata.namespace or DEFAULT_NAMESPACE, entry.metadata.name, blob))  # fmt: skip

    def delete_silence(self, namespace: str, name: str) -> bool:
        with self._transaction("cannot delete a silence") as conn:
            sqlite_cluster.bump(conn, SILENCES)
            cursor = conn.execute("DELETE FROM silenced WHERE namespace = ? AND name = ?", (namespace, name))
        return cursor.rowcount > 0

    def seed_silences(self, entries: Sequence[tuple[str, Silenced]]) -> list[Silenced]:
        """Store each (key, silence) whose key was never seeded before; returns those stored. A
        silence from the config files is created once: ended by time or resolution, it stays ended."""
        created = []
        with self._transaction("cannot seed silences") as conn:
            for key, entry in entries:
                if conn.execute("SELECT 1 FROM silenced_seeded WHERE key = ?", (key,)).fetchone() is not None:
                    continue
                conn.execute("INSERT INTO silenced_seeded VALUES (?)", (key,))
                blob = msgpack.packb(encode(entry), use_bin_type=True)
                conn.execute("INSERT OR REPLACE INTO silenced VALUES (?, ?, ?)",
                             (entry.metadata.namespace or DEFAULT_NAMESPACE, entry.metadata.name, blob))  # fmt: skip
                created.append(entry)
            if created:
                sqlite_cluster.bump(conn, SILENCES)
        return created

    def put_resource(self, kind: str, namespace: str, name: str, document: bytes | None) -> None:
        """A resource changed through the API: its JSON document, or None when it was deleted."""
        with self._transaction("cannot store a resource") as conn:
            sqlite_cluster.bump(conn, RESOURCES)
            conn.execute("INSERT OR REPLACE INTO resources VALUES (?, ?, ?, ?)", (kind, namespace, name, document))

    def put_resources(self, changes: list[tuple[str, str, str, bytes | None]]) -> None:
        """Several resource changes in one transaction: all are stored or none."""
        with self._transaction("cannot store resources") as conn:
            sqlite_cluster.bump(conn, RESOURCES)
            conn.executemany("INSERT OR REPLACE INTO resources VALUES (?, ?, ?, ?)", changes)

    def forget_resource(self, kind: str, namespace: str, name: str) -> bool:
        """Drop the API's change of a resource; False if the API had not changed it."""
        with self._transaction("cannot forget a resource change") as conn:
            sqlite_cluster.bump(conn, RESOURCES)
            cursor = conn.execute("DELETE FROM resources WHERE kind = ? AND namespace = ? AND name = ?",
                                  (kind, namespace, name))  # fmt: skip
            return cursor.rowcount > 0

    def put_api_key(self, key: StoredKey) -> None:
        with self._transaction("cannot store an API key") as conn:
            sqlite_cluster.bump(conn, KEYS)
            conn.execute("INSERT INTO api_keys VALUES (?, ?, ?, ?, ?)",
                         (key.id, key.name, key.role, key.digest, key.created))  # fmt: skip

    def delete_api_key(self, key_id: str) -> bool:
        with self._transaction("cannot delete an API key") as conn:
            sqlite_cluster.bump(conn, KEYS)
            cursor = conn.execute("DELETE FROM api_keys WHERE id = ?", (key_id,))
        return cursor.rowcount > 0

    # -- reads ---------------------------------------------------------------------------------

    def _decode(self, blob: bytes) -> Event:
        try:
            return Event.from_msgpack(blob)
        except ValidationError as exc:
            raise StoreError(f"{self.path}: a stored event cannot be read: {exc}") from exc

    def _events(self, rows: list[tuple[str, str, str, bytes]]) -> list[Event]:
        """The events of ``(namespace, entity, check_name, event)`` rows, those that still load."""
        return self.unreadable.decode_rows("event", _EVENT_KEY, rows, self._decode)

    def known_ids(self, ids: Collection[str]) -> set[str]:
        wanted = list(ids)
        found: set[str] = set()
        with self._errors("cannot look up event ids"):
            conn = self._reader()
            for start in range(0, len(wanted), _ID_CHUNK):
                chunk = wanted[start : start + _ID_CHUNK]
                marks = ",".join("?" * len(chunk))
                found.update(r[0] for r in conn.execute(f"SELECT id FROM event_log WHERE id IN ({marks})", chunk))
        return found

    def get_event(self, namespace: str, entity: str, check: str) -> Event | None:
        with self._errors("cannot read an event"):
            rows = (
                self._reader()
                .execute(
                    "SELECT namespace, entity, check_name, event FROM events"
                    " WHERE namespace = ? AND entity = ? AND check_name = ?",
                    (namespace, entity, check),
                )
                .fetchall()
            )
        found = self._events(rows)  # one that no longer loads is not there, as in the lists
        return found[0] if found else None

    def list_events(self, namespace: str | None = None, entity: str | None = None) -> list[Event]:
        clauses, params = [], []
        if namespace is not None:
            clauses.append("namespace = ?")
            params.append(namespace)
        if entity is not None:
            clauses.append("entity = ?")
            params.append(entity)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        query = (
            f"SELECT namespace, entity, check_name, event FROM events {where} ORDER BY namespace, entity, check_name"
        )
        with self._errors("cannot list events"):
            rows = self._reader().execute(query, params).fetchall()
        return self._events(rows)

    def latest_checks(self) -> dict[CheckKey, Check]:
        with self._errors("cannot load check state"):
            rows = self._reader().execute("SELECT namespace, entity, check_name, event FROM events").fetchall()
        keyed = [(*row[:3], row) for row in rows]  # decode the whole row, to keep its key
        # stored by an older version: one bad row must not stop a start
        loaded = self.unreadable.decode_rows("event", _EVENT_KEY, keyed, lambda r: (r[:3], self._decode(r[3])))
        return {key: event.check for key, event in loaded if event.check is not None}

    def event_log(self, namespace: str, entity: str, check: str, limit: int = 100) -> list[Event]:
        with self._errors("cannot read the event log"):
            rows = (
                self._reader()
                .execute(
                    "SELECT seq, event FROM event_log WHERE namespace = ? AND entity = ? AND check_name = ?"
                    " ORDER BY seq DESC LIMIT ?",
                    (namespace, entity, check, limit),
                )
                .fetchall()
            )
        return self.unreadable.decode_rows("logged event", ("seq",), rows, self._decode)

    def _decode_entity(self, blob: bytes) -> Entity:
        try:
            entity = decode(Entity, msgpack.unpackb(blob, raw=False), "entity")
        except (ValidationError, ValueError, msgpack.UnpackException) as exc:
            raise StoreError(f"{self.path}: a stored entity cannot be read: {exc}") from exc
        return entity

    def get_entity(self, namespace: str, name: str) -> Entity | None:
        with self._errors("cannot read an entity"):
            rows = (
                self._reader()
                .execute(
                    "SELECT namespace, name, entity FROM entities WHERE namespace = ? AND name = ?", (namespace, name)
                )
                .fetchall()
            )
        found = self.unreadable.decode_rows("entity", ("namespace", "entity"), rows, self._decode_entity)
        return found[0] if found else None

    def list_entities(self, namespace: str | None = None) -> list[Entity]:
        query, params = "SELECT namespace, name, entity FROM entities ORDER BY namespace, name", []
        if namespace is not None:
            query, params = (
                "SELECT namespace, name, entity FROM entities WHERE namespace = ? ORDER BY name",
                [namespace],
            )
        with self._errors("cannot list entities"):
            rows = self._reader().execute(query, params).fetchall()
        return self.unreadable.decode_rows("entity", ("namespace", "entity"), rows, self._decode_entity)

    def _decode_letter(self, blob: bytes) -> DeadLetter:
        try:
            return decode(DeadLetter, msgpack.unpackb(blob, raw=False), "dead_letter")
        except (ValidationError, ValueError, msgpack.UnpackException) as exc:
            raise StoreError(f"{self.path}: a stored dead letter cannot be read: {exc}") from exc

    def list_dead_letters(self) -> list[DeadLetter]:
        with self._errors("cannot list dead letters"):
            rows = self._reader().execute("SELECT id, letter FROM dead_letters ORDER BY created, id").fetchall()
        return self.unreadable.decode_rows("dead letter", ("letter",), rows, self._decode_letter)

    def get_dead_letter(self, letter_id: str) -> DeadLetter | None:
        with self._errors("cannot read a dead letter"):
            rows = self._reader().execute("SELECT id, letter FROM dead_letters WHERE id = ?", (letter_id,)).fetchall()
        found = self.unreadable.decode_rows("dead letter", ("letter",), rows, self._decode_letter)
        return found[0] if found else None

    def list_silences(self) -> list[Silenced]:
        with self._errors("cannot list silences"):
            query = "SELECT namespace, name, entry FROM silenced ORDER BY namespace, name"
            rows = self._reader().execute(query).fetchall()
        return self.unreadable.decode_rows("silence", ("namespace", "silence"), rows, _decode_silence)

    def timeline(self, query: TimelineQuery) -> tuple[list[Event], str]:
        """Logged events of a namespace in time order, filtered; and the cursor of the next page
        (empty when this is the last)."""
        clauses: list[str] = ["namespace = ?"]
        params: list[str | int] = [query.namespace]
        if query.since is not None:
            clauses.append("timestamp >= ?")
            params.append(query.since)
        if query.until is not None:
            clauses.append("timestamp <= ?")
            params.append(query.until)
        if query.entity:
            clauses.append("entity = ?")
            params.append(query.entity)
        if query.check:
            clauses.append("check_name = ?")
            params.append(query.check)
        if query.after is not None:
            clauses.append("(timestamp, seq) > (?, ?)")
            params.extend(query.after)
        sql = (f"SELECT seq, timestamp, event FROM event_log WHERE {' AND '.join(clauses)}"
               " ORDER BY timestamp, seq LIMIT ?")  # fmt: skip
        with self._errors("cannot read the timeline"):
            rows = self._reader().execute(sql, [*params, query.limit + 1]).fetchall()
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        cursor = f"{rows[-1][1]}:{rows[-1][0]}" if more and rows else ""
        # the cursor is the last row read, loadable or not: a skipped row is not read again
        return self.unreadable.decode_rows("logged event", ("seq",), [(r[0], r[2]) for r in rows], self._decode), cursor

    def list_resources(self) -> list[tuple[str, str, str, bytes | None]]:
        """Every resource changed through the API: (kind, namespace, name, document or None if deleted)."""
        with self._errors("cannot list resources"):
            rows = self._reader().execute("SELECT kind, namespace, name, document FROM resources").fetchall()
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    def list_api_keys(self) -> list[StoredKey]:
        with self._errors("cannot list API keys"):
            rows = (
                self._reader()
                .execute("SELECT id, name, role, digest, created FROM api_keys ORDER BY created")
                .fetchall()
            )
        return [StoredKey(*row) for row in rows]

    def due_checks(self, now: int, limit: int) -> list[CheckKey]:
        with self._errors("cannot read what is due"):
            rows = (
                self._reader()
                .execute(
                    "SELECT namespace, entity, check_name FROM events WHERE deadline <= ? ORDER BY deadline LIMIT ?",
                    (now, limit),
                )
                .fetchall()
            )
        return [(r[0], r[1], r[2]) for r in rows]

    def count_log(self) -> int:
        with self._errors("cannot count the event log"):
            (count,) = self._reader().execute("SELECT COUNT(*) FROM event_log").fetchone()
        return int(count)

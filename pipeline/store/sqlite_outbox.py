"""The outbox in SQLite: handler work kept until it is done (see :mod:`pipeline.model.outbox`).

Functions of a connection already inside the caller's transaction, so that a job is written
in the same transaction as its event.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from pipeline.model.outbox import Completion
from pipeline.sqlite_many import delete_keys, insert_rows

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    event BLOB NOT NULL,
    backend TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS outbox_done (
    seq INTEGER NOT NULL,
    workflow TEXT NOT NULL,
    PRIMARY KEY (seq, workflow)
) WITHOUT ROWID;
"""


def put(conn: sqlite3.Connection, jobs: Sequence[tuple[str, bytes]], backend: str = "") -> list[int]:
    """Add a job per (event id, packed event), held by ``backend``; their rows, in order.

    Inside the caller's transaction nothing else writes the outbox, and AUTOINCREMENT gives
    rows above every row ever used, so the rows are the ``len(jobs)`` consecutive ones ending at
    the last inserted."""
    if not jobs:
        return []
    insert_rows(conn, "INSERT INTO outbox (event_id, event, backend)",
                [(event_id, event, backend) for event_id, event in jobs])  # fmt: skip
    (last,) = conn.execute("SELECT last_insert_rowid()").fetchone()
    return list(range(last - len(jobs) + 1, last + 1))


def pending(
    conn: sqlite3.Connection, after: int, limit: int, backend: str | None = None
) -> list[tuple[int, bytes, frozenset[str]]]:
    """Jobs after row ``after`` (held by ``backend``, if given), oldest first: (row, event msgpack,
    workflows done)."""
    params: tuple[object, ...] = (after, limit)
    query = "SELECT seq, event FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?"
    if backend is not None:
        query = "SELECT seq, event FROM outbox WHERE seq > ? AND backend = ? ORDER BY seq LIMIT ?"
        params = (after, backend, limit)
    jobs = conn.execute(query, params).fetchall()
    return _with_done(conn, jobs)


def _with_done(conn: sqlite3.Connection, jobs: list[tuple[int, bytes]]) -> list[tuple[int, bytes, frozenset[str]]]:
    if not jobs:
        return []
    after = jobs[0][0] - 1
    done: dict[int, set[str]] = {}
    last = jobs[-1][0]
    for seq, workflow in conn.execute(
        "SELECT seq, workflow FROM outbox_done WHERE seq > ? AND seq <= ?", (after, last)
    ):
        done.setdefault(seq, set()).add(workflow)
    return [(seq, blob, frozenset(done.get(seq, ()))) for seq, blob in jobs]


def claim(conn: sqlite3.Connection, me: str, since: float, limit: int) -> list[tuple[int, bytes, frozenset[str]]]:
    """Take over, for ``me``, up to ``limit`` jobs held by backends with no beat since ``since``
    (dead, or gone for good), oldest first."""
    rows = conn.execute(
        "UPDATE outbox SET backend = ? WHERE seq IN (SELECT seq FROM outbox WHERE backend != ? AND backend NOT IN"
        " (SELECT name FROM backends WHERE beat >= ?) ORDER BY seq LIMIT ?) RETURNING seq, event",
        (me, me, since, limit),
    ).fetchall()
    return _with_done(conn, sorted(rows))


def complete(conn: sqlite3.Connection, completions: Sequence[Completion]) -> None:
    ran = [(c.seq, c.workflow) for c in completions if c.workflow is not None]
    finished = [c.seq for c in completions if c.workflow is None]
    insert_rows(conn, "INSERT OR IGNORE INTO outbox_done", ran)
    delete_keys(conn, "DELETE FROM outbox WHERE seq", finished)
    delete_keys(conn, "DELETE FROM outbox_done WHERE seq", finished)


def count(conn: sqlite3.Connection) -> int:
    (jobs,) = conn.execute("SELECT COUNT(*) FROM outbox").fetchone()
    return int(jobs)


def last(conn: sqlite3.Connection) -> int:
    (seq,) = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM outbox").fetchone()
    return int(seq)

"""Stored check events per second, PostgreSQL beside SQLite in the same run.

The store alone (no transport, no HTTP): ``write_batch(events, merge=...)`` with the backend's
state merge (``pipeline.core.state.apply_result``: history, occurrences, flapping) done inside
the write, as several backends on one database must; results of ``--checks`` checks round robin.
Two shapes: batches of 500 events (eventd under load) and one event per transaction (a quiet
backend). Stores:

- sqlite: a file in a temporary directory, WAL, ``synchronous=NORMAL`` (the default: a commit
  survives the process being killed, a power loss may lose the last ones);
- postgresql: a fresh schema of the database at ``--dsn`` (by default the tests' one), the
  server's default ``synchronous_commit=on`` (each commit flushed to disk);
- postgresql, async commit: the same with ``synchronous_commit=off``, SQLite NORMAL's durability
  (a crash of the server's machine may lose the last commits, never corrupt).

And two backends: two stores (two pools) on the one database, writing at the same time from
two threads, results of the same checks (SQLite: two connections to one file, its one writer
the lock).

Usage: python -m bench.store_postgres [--events N] [--single M] [--checks C] [--dsn URL]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import psycopg

from bench.table import Row, record
from pipeline.core.state import apply_result
from pipeline.model import Check, Entity, Event, ObjectMeta
from pipeline.store.base import EventStore
from pipeline.store.postgres import PostgresStore, redacted
from pipeline.store.sqlite import SQLiteStore

DSN = os.environ.get("PIPELINE_TEST_POSTGRES", "postgresql://pipeline:pipeline@127.0.0.1:5432/pipeline_test")
BATCH = 500


def merge(event: Event, previous: Check | None) -> bool:
    assert event.check is not None
    event.check = apply_result(event.check, previous)
    return True


def results(count: int, checks: int) -> list[Event]:
    events = []
    for i in range(count):
        n = i % checks
        entity = Entity(entity_class="agent", metadata=ObjectMeta(name=f"host{n % 100}", namespace="default"))
        check = Check(metadata=ObjectMeta(name=f"check{n // 100}", namespace="default"), status=(i // checks) % 3,
                      output="OK: load average 0.42, 0.40, 0.38", executed=1_700_000_000 + i, interval=10,
                      low_flap_threshold=10, high_flap_threshold=30)  # fmt: skip
        events.append(Event(timestamp=check.executed, entity=entity, check=check, id=str(uuid.uuid4())))
    return events


def rate(store: EventStore, events: list[Event], size: int) -> float:
    start = time.perf_counter()
    for at in range(0, len(events), size):
        store.write_batch(events[at : at + size], merge=merge)
    return len(events) / (time.perf_counter() - start)


def two_backends(make: Callable[[], EventStore], events: int, checks: int) -> float:
    """Two stores (two backends' pools) on one database, each writing half of the batches at the
    same time from a thread of its own, results of the same checks: events per second in all."""
    stores = [make(), make()]
    for store in stores:
        store.open()
    try:
        rate(stores[0], results(checks, checks), BATCH)
        halves = [results(events // 2, checks), results(events // 2, checks)]
        start = time.perf_counter()
        threads = [
            threading.Thread(target=rate, args=(store, half, BATCH)) for store, half in zip(stores, halves, strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return 2 * (events // 2) / (time.perf_counter() - start)
    finally:
        for store in stores:
            store.close()


def measure(make: Callable[[], EventStore], events: int, single: int, checks: int) -> tuple[float, float]:
    store = make()
    store.open()
    try:
        rate(store, results(checks, checks), BATCH)  # every check has a previous result, as in a running backend
        batched = rate(store, results(events, checks), BATCH)
        one = rate(store, results(single, checks), 1)
        assert store.count_log() == checks + events + single
    finally:
        store.close()
    return batched, one


def postgres(dsn: str, options: str) -> tuple[Callable[[], EventStore], Callable[[], None]]:
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}".encode())

    def drop() -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE".encode())

    url = f"{dsn}{'&' if '?' in dsn else '?'}options={quote(f'-csearch_path={schema} {options}'.strip())}"
    return lambda: PostgresStore(url), drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="events written in batches of 500")
    parser.add_argument("--single", type=int, default=2_000, help="events written one per transaction")
    parser.add_argument("--checks", type=int, default=1_000, help="distinct checks the results are of")
    parser.add_argument("--dsn", default=DSN, help="PostgreSQL database (a schema of its own is made and dropped)")
    args = parser.parse_args()
    print(f"{args.events} events in batches of {BATCH}, {args.single} one per transaction, {args.checks} checks,"
          f" merge=apply_result; PostgreSQL at {redacted(args.dsn)}")  # fmt: skip
    rows: list[tuple[str, float, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = lambda: SQLiteStore(Path(tmp) / "events.db")  # noqa: E731
        batched, one = measure(sqlite, args.events, args.single, args.checks)
    with tempfile.TemporaryDirectory() as tmp:
        shared_sqlite = lambda: SQLiteStore(Path(tmp) / "events.db")  # noqa: E731
        rows.append(
            ("sqlite (synchronous=NORMAL)", batched, one, two_backends(shared_sqlite, args.events, args.checks))
        )
    for label, options in (("postgresql (synchronous_commit=on)", ""),
                           ("postgresql (synchronous_commit=off)", "-csynchronous_commit=off")):  # fmt: skip
        make, drop = postgres(args.dsn, options)
        try:
            batched, one = measure(make, args.events, args.single, args.checks)
        finally:
            drop()
        make, drop = postgres(args.dsn, options)
        try:
            rows.append((label, batched, one, two_backends(make, args.events, args.checks)))
        finally:
            drop()
    base = rows[0]
    print(f"{'store':38} {'batches of 500':>16} {'one per commit':>16} {'two backends':>16}")
    for label, batched, one, two in rows[1:]:
        record(Row("store_postgres", f"{label}, batches of {BATCH}", batched, "events/s", "SQLite", base[1],
                   ">= 0.5x", batched / base[1] >= 0.5))  # fmt: skip
        record(Row("store_postgres", f"{label}, one event per transaction", one, "events/s", "SQLite", base[2]))
        record(Row("store_postgres", f"{label}, two backends", two, "events/s", "SQLite", base[3], ">= 0.5x",
                   two / base[3] >= 0.5))  # fmt: skip
    for label, batched, one, two in rows:
        print(f"{label:38} {batched:>10,.0f} ev/s {one:>10,.0f} ev/s {two:>10,.0f} ev/s"
              f"   ({batched / base[1]:.2f}x, {one / base[2]:.2f}x, {two / base[3]:.2f}x SQLite)")  # fmt: skip


if __name__ == "__main__":
    main()

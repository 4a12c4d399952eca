"""What backends sharing a store need of it: heartbeats, and which latest results are due a
look (a keepalive past its agent's threshold, a check past its ttl), whoever stored them."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from pipeline.core.cluster import Heartbeat
from pipeline.core.keepalive import KEEPALIVE, stale_at
from pipeline.store import EventStore, SQLiteStore
from tests.store_support import KINDS, database, opened
from tests.unit.test_store import make_event

NOW = 1_700_000_000


@pytest.fixture(params=KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventStore]:
    with database(request.param, tmp_path) as factory, opened(factory) as store:
        yield store


def test_beats_are_recorded_with_the_stores_time_and_a_clean_stop_leaves(store: EventStore) -> None:
    first = store.beat(Heartbeat("backend-1", 0.0, "http://127.0.0.1:8080", "127.0.0.1:8081"))
    both = store.beat(Heartbeat("backend-2", 0.0, "http://127.0.0.1:9080", "127.0.0.1:9081"))
    again = store.beat(Heartbeat("backend-1", 0.0, "http://127.0.0.1:8080", "127.0.0.1:8081"))
    assert [b.backend for b in first] == ["backend-1"]
    assert [b.backend for b in both] == ["backend-1", "backend-2"]
    assert first[0].beat > 1_700_000_000  # the store's clock, not the 0 sent
    assert again[0].beat >= both[0].beat
    assert both[1].api_url == "http://127.0.0.1:9080"
    store.leave("backend-1")
    assert [b.backend for b in store.beat(Heartbeat("backend-2", 0.0))] == ["backend-2"]


def test_keepalives_and_ttl_checks_fall_due_and_plain_checks_never(store: EventStore) -> None:
    keepalive = make_event("web1", KEEPALIVE, executed=NOW)
    assert keepalive.check is not None
    keepalive.check.timeout, keepalive.check.ttl, keepalive.check.last_ok = 120, 240, NOW
    ttl = make_event("web1", "backup", executed=NOW)
    assert ttl.check is not None
    ttl.check.ttl = 60
    plain = make_event("web2", "disk", executed=NOW)
    store.write_batch([keepalive, ttl, plain])
    assert stale_at(keepalive.check) == NOW + 120
    assert store.due_checks(NOW + 59, 100) == []
    assert store.due_checks(NOW + 60, 100) == [("default", "web1", "backup")]
    assert store.due_checks(NOW + 10_000, 100) == [("default", "web1", "backup"), ("default", "web1", KEEPALIVE)]
    assert store.due_checks(NOW + 10_000, 1) == [("default", "web1", "backup")]  # most overdue first
    later = make_event("web1", "backup", executed=NOW + 100)
    assert later.check is not None
    later.check.ttl = 60
    store.write_batch([later])  # a new result moves the deadline
    assert store.due_checks(NOW + 120, 100) == [("default", "web1", KEEPALIVE)]


def test_a_version_7_store_gets_deadlines_and_keeps_its_events(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    old = SQLiteStore(path)
    old.open()
    old.write_batch([make_event("web1", "disk", executed=NOW)])
    old.close()
    with closing(sqlite3.connect(path)) as conn:  # as version 7 left it: no deadline column
        conn.executescript("""
            CREATE TABLE events_v7 AS SELECT namespace, entity, check_name, status, timestamp, id, event FROM events;
            DROP TABLE events; ALTER TABLE events_v7 RENAME TO events; UPDATE schema_version SET version = 7;
        """)
    upgraded = SQLiteStore(path)
    upgraded.open()
    try:
        assert [e.check_name for e in upgraded.list_events()] == ["disk"]
        ttl = make_event("web2", "backup", executed=NOW)
        assert ttl.check is not None
        ttl.check.ttl = 30
        upgraded.write_batch([ttl])
        assert upgraded.due_checks(NOW + 30, 10) == [("default", "web2", "backup")]
    finally:
        upgraded.close()
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchone() == (8,)

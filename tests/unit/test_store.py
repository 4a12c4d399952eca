"""The event store contract, run against every store implementation: SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from pipeline.errors import StoreError, StoreRefused
from pipeline.model import Check, CheckHistory, Entity, Event, MetricPoint, Metrics, ObjectMeta
from pipeline.model.deadletter import DeadLetter
from pipeline.store import EventStore, SQLiteStore, postgres_base
from pipeline.store.postgres import PostgresStore
from tests.pg_support import fresh_schema
from tests.store_support import KINDS, StoreFactory, database, opened, raw_sql


def make_event(entity: str = "web1", check: str | None = "disk", status: int = 0, namespace: str = "default",
               metrics: bool = False, executed: int = 1_700_000_000) -> Event:  # fmt: skip
    return Event(
        timestamp=executed,
        entity=Entity(entity_class="agent", metadata=ObjectMeta(name=entity, namespace=namespace)),
        check=None
        if check is None
        else Check(
            metadata=ObjectMeta(name=check, namespace=namespace),
            status=status,
            output=f"status {status}",
            executed=executed,
            history=[CheckHistory(status, executed)],
        ),
        metrics=Metrics(points=[MetricPoint(name="m", value=1.0, timestamp=executed)]) if metrics else None,
        metadata=ObjectMeta(namespace=namespace),
        id=str(uuid.uuid4()),
    )


def without_metrics(event: Event) -> Event:
    return Event.from_dict({k: v for k, v in event.to_dict().items() if k != "metrics"})


@pytest.fixture(params=KINDS)
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """What makes stores on a new database of each kind."""
    with database(request.param, tmp_path) as factory:
        yield factory


@pytest.fixture
def store(stores: StoreFactory) -> Iterator[EventStore]:
    with opened(stores) as store:
        yield store


def test_round_trip_field_for_field(store: EventStore) -> None:
    event = make_event()
    store.write_batch([event])
    assert store.get_event("default", "web1", "disk") == event
    assert store.get_event("default", "web1", "other") is None


def test_latest_is_replaced_and_the_log_keeps_everything(store: EventStore) -> None:
    first, second = make_event(status=0), make_event(status=2, executed=1_700_000_060)
    store.write_batch([first])
    store.write_batch([second])
    assert store.get_event("default", "web1", "disk") == second
    assert store.event_log("default", "web1", "disk") == [second, first]
    assert store.count_log() == 2
    assert store.latest_checks() == {("default", "web1", "disk"): second.check}


def test_any_uint32_status_is_stored_with_the_rest_of_its_batch(store: EventStore) -> None:
    """Sensu's status is a uint32: one above 2^31 - 1 must not fail the write of its batch."""
    highest = make_event(check="odd", status=4_294_967_295)
    others = [make_event(check=f"c{i}", status=i) for i in range(3)]
    store.write_batch([*others, highest])
    assert store.get_event("default", "web1", "odd") == highest
    assert [e.check.status for e in store.event_log("default", "web1", "odd") if e.check] == [4_294_967_295]
    assert len(store.list_events()) == 4


def test_a_result_at_the_end_of_int64_time_with_a_ttl_is_stored(store: EventStore) -> None:
    """Its deadline (``executed`` + ``ttl``) is past int64: kept at the last second instead of
    failing its batch in either store's 64-bit column."""
    last = make_event(check="late", executed=2**63 - 1)
    assert last.check is not None
    last.check.ttl = 120
    keepalive = make_event(check="keepalive", executed=2**63 - 1)
    assert keepalive.check is not None
    keepalive.check.timeout, keepalive.check.ttl = 120, 180
    store.write_batch([last, keepalive, make_event(check="next")])
    assert store.get_event("default", "web1", "late") == last
    assert len(store.list_events()) == 3
    with raw_sql(store) as sql:  # due at the last second rather than never: the ttl is still watched
        deadlines = sql("SELECT check_name, deadline FROM events WHERE check_name <> 'next'").fetchall()
    assert sorted(deadlines) == [("keepalive", 2**63 - 1), ("late", 2**63 - 1)]


def test_metrics_are_not_stored(store: EventStore) -> None:
    both = make_event(metrics=True)
    store.write_batch([make_event(check=None, metrics=True, entity="only-metrics"), both])
    assert store.list_events() == [without_metrics(both)]
    assert store.count_log() == 1


def test_a_replayed_id_is_logged_once_and_known(store: EventStore) -> None:
    event = make_event()
    store.write_batch([event])
    store.write_batch([event])
    assert store.count_log() == 1
    other = str(uuid.uuid4())
    assert store.known_ids([event.id, other]) == {event.id}
    many = [make_event(check=f"c{i}") for i in range(1200)]
    store.write_batch(many)
    assert store.known_ids([e.id for e in many] + [other]) == {e.id for e in many}


def test_namespaces_entities_and_order(store: EventStore) -> None:
    events = [make_event("b", "y"), make_event("a", "z"), make_event("a", "x"), make_event("a", "x", namespace="prod")]
    store.write_batch(events)
    assert [(e.entity_name, e.check_name) for e in store.list_events("default")] == [("a", "x"), ("a", "z"), ("b", "y")]
    assert [e.check_name for e in store.list_events("default", "a")] == ["x", "z"]
    assert [e.namespace for e in store.list_events("prod")] == ["prod"]
    assert len(store.list_events()) == 4


def test_delete(store: EventStore) -> None:
    store.write_batch([make_event()])
    assert store.delete_event("default", "web1", "disk")
    assert not store.delete_event("default", "web1", "disk")
    assert store.list_events() == []


def test_everything_is_there_after_reopening(stores: StoreFactory) -> None:
    events = [make_event(check=f"c{i}") for i in range(10)]
    with opened(stores) as first:
        first.write_batch(events)
    with opened(stores) as again:
        assert again.list_events() == sorted(events, key=lambda e: e.check_name)


def test_readers_in_other_threads_while_batches_are_written(store: EventStore) -> None:
    errors: list[BaseException] = []
    done = threading.Event()

    def read() -> None:
        try:
            while not done.is_set():
                store.list_events()
        except BaseException as exc:
            errors.append(exc)

    readers = [threading.Thread(target=read) for _ in range(3)]
    for thread in readers:
        thread.start()
    for batch in range(20):
        store.write_batch([make_event(check=f"c{batch}-{i}") for i in range(100)])
    done.set()
    for thread in readers:
        thread.join()
    assert errors == []
    assert store.count_log() == 2000


def test_a_failing_batch_writes_nothing(store: EventStore) -> None:
    good = make_event(check="good")
    bad = make_event(check="bad")
    assert bad.check is not None
    bad.check.output = "\ud800"  # a lone surrogate cannot be serialised
    with pytest.raises(StoreRefused, match=f"event {bad.id} cannot be serialised"):
        store.write_batch([good, bad])
    assert store.list_events() == []
    assert store.count_log() == 0


def refusing_trigger(store: EventStore, body: str) -> None:
    """A trigger before each insert into ``event_log`` doing ``body`` for the check ``poison``."""
    with raw_sql(store) as sql:
        if isinstance(store, SQLiteStore):
            sql(
                f"CREATE TRIGGER under_test BEFORE INSERT ON event_log WHEN NEW.check_name = 'poison' BEGIN {body}; END"
            )
            return
        sql(f"CREATE OR REPLACE FUNCTION under_test() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"IF NEW.check_name = 'poison' THEN {body}; END IF; RETURN NEW; END $$")  # fmt: skip
        sql("CREATE TRIGGER under_test BEFORE INSERT ON event_log FOR EACH ROW EXECUTE FUNCTION under_test()")


def test_a_row_the_operator_refuses_is_a_refusal_and_a_broken_store_is_a_failure(store: EventStore) -> None:
    """What the store says of the data (a trigger refusing it, as a constraint would) is
    StoreRefused: the event is set aside, never offered again. What it says of itself (here a
    function it lacks; a full disk, a lost server) is a StoreError only: offered again later."""
    refusal = "SELECT RAISE(ABORT, 'not here')" if isinstance(store, SQLiteStore) else "RAISE EXCEPTION 'not here'"
    refusing_trigger(store, refusal)
    with pytest.raises(StoreRefused, match="not here"):
        store.write_batch([make_event(check="fine"), make_event(check="poison")])
    store.write_batch([make_event(check="fine")])
    with raw_sql(store) as sql:
        sql("DROP TRIGGER under_test" if isinstance(store, SQLiteStore) else "DROP TRIGGER under_test ON event_log")
    refusing_trigger(store, "SELECT no_such_function()" if isinstance(store, SQLiteStore) else
                     "PERFORM no_such_function()")  # fmt: skip
    with pytest.raises(StoreError, match="no_such_function") as failed:
        store.write_batch([make_event(check="poison")])
    assert not isinstance(failed.value, StoreRefused)
    assert [e.check_name for e in store.list_events()] == ["fine"]


def test_an_unreadable_record_is_skipped_logged_and_counted_once(
    store: EventStore, caplog: pytest.LogCaptureFixture
) -> None:
    # it used to be a StoreError, which failed every list it was part of (GET /events: 500 for good)
    store.write_batch([make_event()])
    with raw_sql(store) as execute:
        execute("UPDATE events SET event = ?", (b"\xc1",))
    counted: list[str] = []
    store.unreadable.count = counted.append
    caplog.set_level(logging.ERROR)
    assert store.list_events() == []
    assert store.list_events() == []
    assert counted == ["event"]
    (record,) = caplog.records
    assert record.getMessage() == "stored event no longer loads; skipped"
    assert "a stored event cannot be read" in str(record.__dict__["error"])


def test_unopenable_database_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot open the event store"):
        SQLiteStore(tmp_path / "missing-dir" / "events.db").open()


def test_entities_register_once_and_deregistering_removes_their_latest_events(store: EventStore) -> None:
    web1 = Entity(entity_class="agent", metadata=ObjectMeta(name="web1", namespace="default"), subscriptions=["web"])
    assert store.put_entity(web1) is True  # new: a registration
    assert store.put_entity(web1) is False
    assert store.get_entity("default", "web1") == web1
    assert store.list_entities() == [web1]
    first, second, other = make_event(check="disk"), make_event(check="load"), make_event(entity="web2")
    store.write_batch([first, second, other])
    removed = store.delete_entity("default", "web1")
    assert sorted(e.check_name for e in removed) == ["disk", "load"]
    assert store.get_entity("default", "web1") is None
    assert store.list_events(entity="web1") == []
    assert store.list_events(entity="web2") != []
    assert store.known_ids([first.id]) == {first.id}  # the log keeps the past


def test_an_older_store_is_upgraded_in_place(tmp_path: Path) -> None:
    store_path = tmp_path / "events.db"
    old = sqlite3.connect(store_path)
    old.executescript("CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES (1);")
    old.close()
    upgraded = SQLiteStore(store_path)
    upgraded.open()
    try:
        assert upgraded.put_entity(Entity(metadata=ObjectMeta(name="web1", namespace="default"))) is True
    finally:
        upgraded.close()
    with closing(sqlite3.connect(store_path)) as check:
        assert check.execute("SELECT version FROM schema_version").fetchone() == (8,)


def test_dead_letters_are_kept_until_deleted(store: EventStore) -> None:
    letter = DeadLetter(id="d1", created=1_800_000_000, namespace="default", handler="pager", workflow="w",
                        error="exited 1: boom", attempts=3, event=make_event())  # fmt: skip
    store.put_dead_letter(letter)
    store.put_dead_letter(DeadLetter(id="d0", created=1_700_000_000, handler="x", event=make_event()))
    assert [d.id for d in store.list_dead_letters()] == ["d0", "d1"]  # oldest first
    assert store.get_dead_letter("d1") == letter
    assert store.delete_dead_letter("d1") is True
    assert store.delete_dead_letter("d1") is False
    assert store.get_dead_letter("d1") is None


def test_writes_from_several_threads_do_not_interleave_their_transactions(store: EventStore) -> None:
    """The event processor, liveness, the API and the pipeline each write from their own thread."""
    errors: list[BaseException] = []

    def write(kind: str) -> None:
        try:
            for i in range(200):
                if kind == "events":
                    store.write_batch([make_event(check=f"c{i}")])
                else:
                    store.put_entity(Entity(metadata=ObjectMeta(name=f"e{i}", namespace="default")))
                    store.put_dead_letter(DeadLetter(id=f"d{i}", created=i, event=make_event()))
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(kind,)) for kind in ("events", "entities")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(store.list_entities()) == 200
    assert store.count_log() == 200


#: Writes batches in a process whose SQLite puts its temporary files in argv[2] (SQLITE_TMPDIR,
#: read once a process), and prints the size of the inotify records of the files created there
#: meanwhile, 0 for none (inotify: the files live for microseconds, as SQLite unlinks them at once).
_WRITE_BATCHES = """
import ctypes, os, sys
from pathlib import Path
from pipeline.store import SQLiteStore
from tests.unit.test_store import make_event
libc = ctypes.CDLL(None, use_errno=True)
watch = libc.inotify_init1(os.O_NONBLOCK)
assert watch >= 0 and libc.inotify_add_watch(watch, sys.argv[2].encode(), 0x100) >= 0  # IN_CREATE
store = SQLiteStore(Path(sys.argv[1]))
store.open()
for batch in range(3):  # every check stored again: its events row replaced, as results keep coming
    store.write_batch([make_event(entity=f"web{i % 7}", check=f"c{i % 40}", status=batch) for i in range(300)])
store.close()
try:
    created = os.read(watch, 65536)
except BlockingIOError:
    created = b""
print(len(created))  # bytes of inotify records: one for each file made there, whatever its name
"""


def test_sqlite_writes_make_no_temporary_files(tmp_path: Path) -> None:
    """A batch goes in statements of many rows, each keeping an undo log of its own: in memory,
    not a file made, written and deleted in SQLite's temporary directory for every batch."""
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    env = {**os.environ, "SQLITE_TMPDIR": str(temporary)}
    done = subprocess.run([sys.executable, "-c", _WRITE_BATCHES, str(tmp_path / "events.db"), str(temporary)],
                          env=env, check=True, capture_output=True, text=True, cwd=Path(__file__).parents[2],
                          timeout=60)  # fmt: skip
    assert done.stdout.strip() == "0"


def test_a_postgres_database_of_schema_1_is_migrated_and_keeps_its_events(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Version 2 widens the status columns to BIGINT: a database an older pipeline made takes a
    uint32 status once a newer one opens it, and what it held stays readable."""
    older = make_event(check="old", status=2)
    with fresh_schema() as dsn:
        current = postgres_base.MIGRATIONS
        monkeypatch.setattr(postgres_base, "MIGRATIONS", current[:1])
        with opened(lambda backend="": PostgresStore(dsn)) as store:
            store.write_batch([older])
        monkeypatch.setattr(postgres_base, "MIGRATIONS", current)
        with caplog.at_level(logging.INFO), opened(lambda backend="": PostgresStore(dsn)) as store:
            highest = make_event(check="new", status=4_294_967_295)
            store.write_batch([highest])
            assert store.get_event("default", "web1", "old") == older
            assert store.get_event("default", "web1", "new") == highest
            with raw_sql(store) as sql:
                assert sql("SELECT version FROM schema_version").fetchone() == (2,)
        assert "migrating the PostgreSQL schema" in caplog.text

"""Rows stored by an older version that no longer load (a number out of today's range) are
skipped where the backend reads them at start, with an error naming them, never a crash."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest

from pipeline.errors import StoreError
from pipeline.model import Check, Entity, Event, ObjectMeta, new_event_id
from pipeline.model.deadletter import DeadLetter
from pipeline.model.pipeline import Silenced
from pipeline.store import EventStore
from tests.store_support import KINDS, database, opened, raw_sql


def event(check: str) -> Event:
    return Event(timestamp=1, entity=Entity(metadata=ObjectMeta(name="web1", namespace="default")),
                 check=Check(metadata=ObjectMeta(name=check, namespace="default"), output="o"), id=new_event_id())  # fmt: skip


@pytest.fixture(params=KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventStore]:
    with database(request.param, tmp_path) as factory, opened(factory) as store:
        yield store


def test_state_and_silences_load_without_the_rows_that_no_longer_load(
    store: EventStore, caplog: pytest.LogCaptureFixture
) -> None:
    store.write_batch([event("good"), event("poisoned")])
    store.put_silence(Silenced(metadata=ObjectMeta(name="*:good", namespace="default"), check="good"))
    store.put_silence(Silenced(metadata=ObjectMeta(name="*:poisoned", namespace="default"), check="poisoned"))
    poisoned = event("poisoned").to_dict()
    poisoned["check"]["ttl"] = 2**63  # msgpack holds it; int64 does not
    silence = {"metadata": {"name": "*:poisoned", "namespace": "default"}, "check": "poisoned", "expire": 2**63}
    with raw_sql(store) as execute:
        execute("UPDATE events SET event = ? WHERE check_name = 'poisoned'", (msgpack.packb(poisoned),))
        execute("UPDATE silenced SET entry = ? WHERE name = '*:poisoned'", (msgpack.packb(silence),))
    caplog.set_level(logging.ERROR)
    assert list(store.latest_checks()) == [("default", "web1", "good")]
    assert [s.metadata.name for s in store.list_silences()] == ["*:good"]
    messages = [(r.getMessage(), r.__dict__.get("check") or r.__dict__.get("silence")) for r in caplog.records]
    assert messages == [("stored event no longer loads; skipped", "poisoned"),
                        ("stored silence no longer loads; skipped", "*:poisoned")]  # fmt: skip
    assert "check.ttl: 9223372036854775808 is out of range" in str(caplog.records[0].__dict__["error"])


def test_every_read_skips_rows_that_no_longer_load_and_counts_each_once(store: EventStore) -> None:
    counted: list[str] = []
    store.unreadable.count = counted.append
    store.write_batch([event("good"), event("poisoned")])
    web1 = Entity(entity_class="agent", metadata=ObjectMeta(name="web1", namespace="default"))
    store.put_entity(web1)
    store.put_dead_letter(DeadLetter(id="d1", created=1, handler="h", event=event("good")))
    with raw_sql(store) as execute:  # an attempts count, a status and a class Sensu Go would not store
        execute("UPDATE dead_letters SET letter = ?", (msgpack.packb({"id": "d1", "attempts": 2**40}),))
        execute("UPDATE entities SET entity = ?", (msgpack.packb({"entity_class": 7}),))
        for table in ("events", "event_log"):
            poisoned = event("poisoned").to_dict()
            poisoned["check"]["status"] = -1
            execute(f"UPDATE {table} SET event = ? WHERE check_name = 'poisoned'", (msgpack.packb(poisoned),))
    assert [e.check.name for e in store.list_events() if e.check] == ["good"]
    assert store.get_event("default", "web1", "poisoned") is None
    assert store.event_log("default", "web1", "poisoned") == []
    assert store.list_entities() == []
    assert store.get_entity("default", "web1") is None
    assert store.list_dead_letters() == []
    assert store.get_dead_letter("d1") is None
    assert [e.check.name for e in store.delete_entity("default", "web1") if e.check] == ["good"]
    assert sorted(counted) == ["dead letter", "entity", "event", "logged event"]


def test_an_event_past_int64_is_a_store_error_not_a_crash(store: EventStore) -> None:
    # the model refuses it where events enter; should one slip through, the writer names it and goes on
    bad = event("huge")
    bad.timestamp = 10**30
    with pytest.raises(StoreError, match="cannot be serialised"):
        store.write_batch([bad], [bad])
    with pytest.raises(StoreError, match="cannot be serialised"):
        store.put_jobs([bad])
    store.write_batch([event("good")])
    assert [e.check.name for e in store.list_events() if e.check] == ["good"]

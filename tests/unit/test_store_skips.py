"""Rows stored by an older version that no longer load (a number out of today's range) are
skipped where the backend reads them at start, with an error naming them, never a crash."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import msgpack
import pytest

from pipeline.model import Check, Entity, Event, ObjectMeta, new_event_id
from pipeline.model.pipeline import Silenced
from pipeline.store import SQLiteStore


def event(check: str) -> Event:
    return Event(timestamp=1, entity=Entity(metadata=ObjectMeta(name="web1", namespace="default")),
                 check=Check(metadata=ObjectMeta(name=check, namespace="default"), output="o"), id=new_event_id())  # fmt: skip


def test_state_and_silences_load_without_the_rows_that_no_longer_load(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "events.db"
    store = SQLiteStore(path)
    store.open()
    store.write_batch([event("good"), event("poisoned")])
    store.put_silence(Silenced(metadata=ObjectMeta(name="*:good", namespace="default"), check="good"))
    store.put_silence(Silenced(metadata=ObjectMeta(name="*:poisoned", namespace="default"), check="poisoned"))
    poisoned = event("poisoned").to_dict()
    poisoned["check"]["ttl"] = 2**63  # msgpack holds it; int64 does not
    silence = {"metadata": {"name": "*:poisoned", "namespace": "default"}, "check": "poisoned", "expire": 2**63}
    with sqlite3.connect(path) as db:
        db.execute("UPDATE events SET event = ? WHERE check_name = 'poisoned'", (msgpack.packb(poisoned),))
        db.execute("UPDATE silenced SET entry = ? WHERE name = '*:poisoned'", (msgpack.packb(silence),))
    db.close()
    caplog.set_level(logging.ERROR)
    assert list(store.latest_checks()) == [("default", "web1", "good")]
    assert [s.metadata.name for s in store.list_silences()] == ["*:good"]
    store.close()
    messages = [(r.getMessage(), r.__dict__.get("check") or r.__dict__.get("silence")) for r in caplog.records]
    assert messages == [("stored event no longer loads; skipped", "poisoned"),
                        ("stored silence no longer loads; skipped", "*:poisoned")]  # fmt: skip
    assert "check.ttl: 9223372036854775808 is out of range" in str(caplog.records[0].__dict__["error"])

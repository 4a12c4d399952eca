"""Rows an older version stored that today's model refuses (a number out of today's range): the
backend starts, every list and lookup skips them (named in one error log line, counted in
/metrics), and a new event of the same check replaces the unreadable one."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import msgpack
import pytest
import trio

from tests.support import admin_headers, loopback_backend, write_config

pytestmark = pytest.mark.e2e

NS = "/api/core/v2/namespaces/default"


def result(check: str, status: int = 0) -> dict[str, object]:
    return {"entity": {"metadata": {"name": "web1"}, "entity_class": "proxy"},
            "check": {"metadata": {"name": check}, "output": "o", "status": status}}  # fmt: skip


def poison(database: Path) -> None:
    """As an older version could have stored them: a status over uint32 in the latest event and the
    event log of check ``poisoned``, an expire over int64 in silence ``*:poisoned``."""
    with sqlite3.connect(database) as db:
        for table, key in (("events", "check_name = 'poisoned'"), ("event_log", "check_name = 'poisoned'")):
            (blob,) = db.execute(f"SELECT event FROM {table} WHERE {key}").fetchone()
            event = msgpack.unpackb(blob)
            event["check"]["status"] = 2**63
            db.execute(f"UPDATE {table} SET event = ? WHERE {key}", (msgpack.packb(event),))
        (blob,) = db.execute("SELECT entry FROM silenced WHERE name = '*:poisoned'").fetchone()
        silence = msgpack.unpackb(blob)
        silence["expire"] = 2**63
        db.execute("UPDATE silenced SET entry = ? WHERE name = '*:poisoned'", (msgpack.packb(silence),))
    db.close()


async def test_unreadable_events_and_silences_are_skipped_everywhere_and_counted(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config", "")
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            backend = loopback_backend(tmp_path, config)
            addresses = await nursery.start(backend.run)
            async with httpx.AsyncClient(base_url=addresses.api_url, headers=admin_headers(backend)) as client:
                for check in ("good", "poisoned"):
                    assert (await client.post(f"{NS}/events", json=result(check))).status_code == 201
                    silence = {"check": check, "expire": 3600}
                    assert (await client.post(f"{NS}/silenced", json=silence)).status_code == 201
            nursery.cancel_scope.cancel()
    poison(tmp_path / "data" / "events.db")
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            backend = loopback_backend(tmp_path, config)
            addresses = await nursery.start(backend.run)
            async with httpx.AsyncClient(base_url=addresses.api_url, headers=admin_headers(backend)) as client:
                everywhere = await client.get("/api/core/v2/events")
                listed = await client.get(f"{NS}/events")
                of_entity = await client.get(f"{NS}/events/web1")
                one = await client.get(f"{NS}/events/web1/poisoned")
                timeline = await client.get(f"{NS}/timeline", params={"since": 0})
                silences = await client.get(f"{NS}/silenced")
                metrics = (await client.get("/metrics")).text
                replaced = await client.post(f"{NS}/events", json=result("poisoned", 1))
                again = await client.get(f"{NS}/events/web1/poisoned")
            nursery.cancel_scope.cancel()
    for response in (everywhere, listed, of_entity):
        assert response.status_code == 200, response.text
        assert [e["check"]["metadata"]["name"] for e in response.json()] == ["good"]
    assert one.status_code == 404
    assert timeline.status_code == 200, timeline.text
    assert [e["check"]["metadata"]["name"] for e in timeline.json()] == ["good"]
    assert [s["metadata"]["name"] for s in silences.json()] == ["*:good"]
    assert 'pipeline_store_unreadable_total{kind="event"} 1.0' in metrics
    assert 'pipeline_store_unreadable_total{kind="logged event"} 1.0' in metrics
    assert 'pipeline_store_unreadable_total{kind="silence"} 1.0' in metrics
    assert replaced.status_code == 201
    assert again.json()["check"]["status"] == 1

"""The event processor's order of work: keepalives are never stuck behind a backlog."""

from __future__ import annotations

from pathlib import Path

import trio

from pipeline.backend.eventd import BATCH_MAX, EventProcessor, Outcome
from pipeline.core.keepalive import keepalive_check, passing_keepalive
from pipeline.metrics import BackendMetrics
from pipeline.model import Check, Entity, Event, ObjectMeta, new_event_id
from pipeline.model.outbox import HandlerJob
from pipeline.store.service import StoreService
from pipeline.store.sqlite import SQLiteStore

NOW = 1_800_000_000


def check_event(i: int) -> Event:
    return Event(timestamp=NOW, entity=Entity(entity_class="agent", metadata=ObjectMeta(name="web1", namespace="default")),
                 check=Check(metadata=ObjectMeta(name=f"c{i % 50}", namespace="default"), status=0, interval=10,
                             executed=NOW), metadata=ObjectMeta(namespace="default"), id=new_event_id())  # fmt: skip


async def test_a_keepalive_submitted_behind_a_backlog_is_processed_first(tmp_path: Path) -> None:
    metrics = BackendMetrics.create()
    store = StoreService(SQLiteStore(tmp_path / "events.db"), metrics.store)
    await store.open()
    to_handlers, from_eventd = trio.open_memory_channel[HandlerJob](10_000)
    eventd = EventProcessor(store, metrics, to_handlers)
    order: list[str] = []

    def reply(event_id: str, outcome: Outcome) -> None:
        assert outcome is Outcome.STORED
        order.append(event_id)

    backlog = 3 * BATCH_MAX
    for i in range(backlog):
        await eventd.submit(check_event(i), reply)
    received = check_event(0)
    received.check = keepalive_check(20, 120, 240, "default", NOW)
    keepalive = passing_keepalive(received, NOW)
    await eventd.submit_priority(keepalive, reply)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(eventd.run)
            while len(order) < backlog + 1:
                await from_eventd.receive()
            nursery.cancel_scope.cancel()
    await store.close()
    assert order.index(keepalive.id) == 0  # in the first batch, ahead of every check result

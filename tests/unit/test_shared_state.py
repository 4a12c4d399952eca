"""Check state when backends share a store: the store merges each result with its check's
latest one under a lock, so two event processors writing results of the same checks at the same
moment still produce Sensu's history, occurrences and flapping, exactly as one would."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import trio

from pipeline.backend.eventd import EventProcessor, Outcome, Submission
from pipeline.backend.silences import Silences
from pipeline.core.state import apply_result
from pipeline.metrics import BackendMetrics
from pipeline.model import Check, Entity, Event, ObjectMeta, new_event_id
from pipeline.model.outbox import HandlerJob
from pipeline.model.pipeline import Silenced
from pipeline.store.service import StoreService
from pipeline.store.sqlite import SQLiteStore
from tests.store_support import StoreFactory

NOW = 1_800_000_000
#: statuses that change often enough to flap, and resolve now and then
STATUSES = [0, 2, 2, 0, 1, 2, 0, 0, 2, 1, 0, 2, 2, 2, 0, 1, 0, 2, 0, 2, 2, 0, 0, 1, 2]


def result(check: str, status: int, executed: int) -> Event:
    return Event(timestamp=executed, entity=Entity(entity_class="agent", metadata=ObjectMeta(name="web1", namespace="default"),
                                                   subscriptions=["linux"]),
                 check=Check(metadata=ObjectMeta(name=check, namespace="default"), status=status, interval=10,
                             executed=executed, subscriptions=["linux"]),
                 metadata=ObjectMeta(namespace="default"), id=new_event_id())  # fmt: skip


async def processor(make: StoreFactory) -> tuple[EventProcessor, StoreService]:
    metrics = BackendMetrics.create()
    store = StoreService(make(), metrics.store)
    await store.open()
    handlers, _ = trio.open_memory_channel[HandlerJob](100_000)
    silences = Silences(store, metrics, wall_clock=lambda: NOW)
    await silences.load()
    return EventProcessor(store, metrics, handlers, wall_clock=lambda: NOW, silences=silences), store


async def submit(eventd: EventProcessor, event: Event) -> None:
    stored = trio.Event()

    def reply(_: str, outcome: Outcome) -> None:
        assert outcome is Outcome.STORED
        stored.set()

    await eventd.submit(event, reply)
    await stored.wait()


def replayed(statuses_and_times: list[tuple[int, int]], check: str) -> Check:
    """What one backend makes of these results in this order."""
    merged: Check | None = None
    for status, executed in statuses_and_times:
        incoming = result(check, status, executed).check
        assert incoming is not None
        merged = apply_result(incoming, merged)
    assert merged is not None
    return merged


def state_of(check: Check) -> tuple[object, ...]:
    return (check.history, check.occurrences, check.occurrences_watermark, check.state, check.total_state_change,
            check.last_ok)  # fmt: skip


async def test_two_processors_writing_the_same_checks_at_once_keep_one_exact_history(shared_db: StoreFactory) -> None:
    first, store = await processor(shared_db)
    second, other = await processor(shared_db)
    checks = ["disk", "load", "memory"]
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await nursery.start(first.run)
            await nursery.start(second.run)

            async def send(eventd: EventProcessor, offset: int) -> None:
                for i, status in enumerate(STATUSES):
                    for check in checks:
                        await submit(eventd, result(check, status, NOW + 2 * i + offset))

            async with trio.open_nursery() as senders:
                senders.start_soon(send, first, 0)
                senders.start_soon(send, second, 1)
            nursery.cancel_scope.cancel()
    for check in checks:
        logged = store.store.event_log("default", "web1", check, 1000)
        assert len(logged) == 2 * len(STATUSES)  # nothing lost
        in_commit_order = [(e.check.status, e.check.executed) for e in reversed(logged)]  # type: ignore[union-attr]
        stored = await store.get_event("default", "web1", check)
        assert stored is not None
        assert stored.check is not None
        # the history of the results in the order the store took them, as one backend makes it
        assert state_of(stored.check) == state_of(replayed(in_commit_order, check))
        assert len(stored.check.history) == 21
    await store.close()
    await other.close()


async def test_a_shared_store_silences_and_resolves_as_one_backend_does(
    tmp_path: Path, shared_db: StoreFactory
) -> None:
    outcomes = []
    for make in (lambda: SQLiteStore(tmp_path / "alone.db"), shared_db):
        eventd, store = await processor(make)
        assert eventd.silences is not None
        await eventd.silences.put(Silenced(metadata=ObjectMeta(name="linux:disk", namespace="default"),
                                           subscription="linux", check="disk", expire_on_resolve=True))  # fmt: skip
        seen = []
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                await nursery.start(eventd.run)
                for i, status in enumerate([2, 2, 0, 2]):
                    await submit(eventd, result("disk", status, NOW + i))
                    stored = await store.get_event("default", "web1", "disk")
                    assert stored is not None
                    assert stored.check is not None
                    seen.append((stored.check.is_silenced, list(stored.check.silenced), stored.check.occurrences))
                nursery.cancel_scope.cancel()
        outcomes.append((seen, [dataclasses.asdict(s) for s in eventd.silences.list(None)],
                         await store.list_silences()))  # fmt: skip
        await store.close()
    one, shared_store = outcomes
    assert one == shared_store
    # failing twice, silenced; the resolution ends the silence (is_silenced stays, as in Sensu Go)
    assert one[0] == [(True, ["linux:disk"], 1), (True, ["linux:disk"], 2), (True, [], 1), (False, [], 1)]
    assert one[1] == []
    assert one[2] == []


async def test_a_failure_made_from_a_result_a_newer_one_overtook_is_dropped(
    tmp_path: Path, shared_db: StoreFactory
) -> None:
    """A keepalive failure made from the stored result, and a keepalive that arrived meanwhile,
    in one batch: the failure is dropped (one backend from memory, a shared store under lock)."""
    told: dict[str, Outcome] = {}

    def reply(event_id: str, outcome: Outcome) -> None:
        told[event_id] = outcome

    for make in (lambda: SQLiteStore(tmp_path / "alone.db"), shared_db):
        eventd, store = await processor(make)
        await eventd.process_batch([Submission(result("backup", 0, NOW))])
        stored = await store.get_event("default", "web1", "backup")
        assert stored is not None
        assert stored.check is not None
        fresh, failing = result("backup", 0, NOW + 5), result("backup", 2, NOW + 6)
        told.clear()
        await eventd.process_batch([
            Submission(fresh, reply),
            Submission(failing, reply, alive=False, expect=stored.check.history),
        ])  # fmt: skip
        assert told == {fresh.id: Outcome.STORED, failing.id: Outcome.SUPERSEDED}
        latest = await store.get_event("default", "web1", "backup")
        assert latest is not None
        assert latest.check is not None
        assert [h.status for h in latest.check.history] == [0, 0]
        assert eventd.metrics.events_superseded._value.get() == 1
        await store.close()

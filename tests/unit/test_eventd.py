"""The event processor's order of work: keepalives are never stuck behind a backlog."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
import trio

from pipeline.backend.checkstate import ChecksForgotten, ChecksStored, open_notices
from pipeline.backend.eventd import BATCH_MAX, EventProcessor, Outcome
from pipeline.backend.liveness import Liveness
from pipeline.core.host_events import host_event
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


class Replies:
    """The processor's word on each of ``expected`` submissions, in the order given; ``all`` is set
    once every one has had it."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.outcomes: dict[str, Outcome] = {}
        self.all = trio.Event()

    def reply(self, event_id: str, outcome: Outcome) -> None:
        self.outcomes[event_id] = outcome
        if len(self.outcomes) == self.expected:
            self.all.set()


async def run_until_answered(eventd: EventProcessor, replies: Replies) -> None:
    """Run the processor on what was submitted to it until every submission has its answer."""
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(eventd.run)
            await replies.all.wait()
            nursery.cancel_scope.cancel()


async def test_a_keepalive_submitted_behind_a_backlog_is_processed_first(tmp_path: Path) -> None:
    metrics = BackendMetrics.create()
    store = StoreService(SQLiteStore(tmp_path / "events.db"), metrics.store)
    await store.open()
    to_handlers, _from_eventd = trio.open_memory_channel[HandlerJob](10_000)
    eventd = EventProcessor(store, metrics, to_handlers)
    backlog = 3 * BATCH_MAX
    stored = Replies(backlog + 1)
    for i in range(backlog):
        await eventd.submit(check_event(i), stored.reply)
    received = check_event(0)
    received.check = keepalive_check(20, 120, 240, "default", NOW)
    keepalive = passing_keepalive(received, NOW)
    await eventd.submit_priority(keepalive, stored.reply)
    await run_until_answered(eventd, stored)
    await store.close()
    assert set(stored.outcomes.values()) == {Outcome.STORED}
    assert list(stored.outcomes).index(keepalive.id) == 0  # in the first batch, ahead of every check result


async def test_a_delete_is_done_in_turn_with_the_results_and_liveness_hears_of_both(tmp_path: Path) -> None:
    metrics = BackendMetrics.create()
    store = StoreService(SQLiteStore(tmp_path / "events.db"), metrics.store)
    await store.open()
    to_handlers, from_eventd = trio.open_memory_channel[HandlerJob](100)
    to_liveness, notices = open_notices()
    eventd = EventProcessor(store, metrics, to_handlers, notices=to_liveness, wall_clock=lambda: NOW)
    liveness = Liveness(eventd, store, metrics, notices, wall_clock=lambda: NOW)
    failing = check_event(1)
    assert failing.check is not None
    failing.check.status, failing.check.ttl, failing.check.handlers = 2, 30, ["pager"]
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(eventd.run)
            await nursery.start(liveness.run)
            await eventd.submit(failing)
            # queued behind the result: the delete cannot overtake it, and ends the state it made
            assert await eventd.delete_event("default", "web1", "c1")
            again = check_event(1)
            assert again.check is not None
            again.check.handlers = ["pager"]
            await eventd.submit(again)
            jobs = [(await from_eventd.receive()).event for _ in range(2)]
            nursery.cancel_scope.cancel()
    await store.close()
    assert [e.id for e in jobs] == [failing.id, again.id]
    assert jobs[1].check is not None
    assert (jobs[1].check.occurrences, len(jobs[1].check.history)) == (1, 1)  # afresh after the delete
    assert liveness.ttls.next_at() is None  # armed by the failing result, disarmed by the delete


def test_liveness_arms_a_ttl_for_a_stored_result_and_disarms_it_when_the_check_is_forgotten() -> None:
    metrics = BackendMetrics.create()
    liveness = Liveness(None, None, metrics)  # type: ignore[arg-type]  # apply() reads neither
    check = Check(metadata=ObjectMeta(name="backup", namespace="default"), ttl=60)
    key = ("default", "db1", "backup")
    liveness.apply(ChecksStored(((key, check),), NOW))
    assert liveness.ttls.next_at() == NOW + 60
    liveness.apply(ChecksForgotten((key,)))
    assert liveness.ttls.next_at() is None


async def test_only_an_event_that_names_a_handler_or_pipeline_gets_a_handler_job(tmp_path: Path) -> None:
    metrics = BackendMetrics.create()
    store = StoreService(SQLiteStore(tmp_path / "events.db"), metrics.store)
    await store.open()
    to_handlers, from_eventd = trio.open_memory_channel[HandlerJob](10)
    eventd = EventProcessor(store, metrics, to_handlers)
    quiet, paging = check_event(1), check_event(2)
    assert paging.check is not None
    paging.check.handlers = ["pager"]
    stored = Replies(2)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(eventd.run)
            for event in (quiet, paging):
                await eventd.submit(event, stored.reply)
            await stored.all.wait()
            job = await from_eventd.receive()
            nursery.cancel_scope.cancel()
    pending = await store.pending_jobs(0, 10)
    await store.close()
    assert stored.outcomes == {quiet.id: Outcome.STORED, paging.id: Outcome.STORED}
    # the quiet one is not handed on at all (nothing to run), the paging one with its kept job
    assert job.event.id == paging.id
    assert from_eventd.statistics().current_buffer_used == 0
    assert [job.seq for job in pending] == [job.seq]
    assert job.seq > 0


async def test_a_change_event_naming_no_handler_gets_the_change_handlers_whichever_way_it_came(
    tmp_path: Path,
) -> None:
    """``--change-handlers``: an agent's host event, one sent with ``pipeline event send`` or put
    through the events API runs through them like a pushed one; a change event naming its own
    handlers or a pipeline, and a check result, keep what they name."""
    metrics = BackendMetrics.create()
    store = StoreService(SQLiteStore(tmp_path / "events.db"), metrics.store)
    await store.open()
    to_handlers, from_eventd = trio.open_memory_channel[HandlerJob](10)
    eventd = EventProcessor(store, metrics, to_handlers, change_handlers=["changes"])
    oom = host_event(Entity(metadata=ObjectMeta(name="web1", namespace="default")), name="oom-kill", output="x",
                     status=2, timestamp=NOW)  # fmt: skip
    own = host_event(Entity(metadata=ObjectMeta(name="web1", namespace="default")), name="deploy", output="y",
                     status=0, timestamp=NOW)  # fmt: skip
    assert own.check is not None
    own.check.handlers = ["slack"]
    result = check_event(3)
    stored = Replies(3)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(eventd.run)
            for event in (oom, own, result):
                await eventd.submit(event, stored.reply)
            await stored.all.wait()
            jobs = {job.event.id: job.event for job in [await from_eventd.receive() for _ in range(2)]}
            nursery.cancel_scope.cancel()
    await store.close()
    handlers = {event_id: event.check.handlers for event_id, event in jobs.items() if event.check is not None}
    # the check result names no handler: stored, and not handed on (nothing to run)
    assert handlers == {oom.id: ["changes"], own.id: ["slack"]}
    assert stored.outcomes[result.id] is Outcome.STORED
    assert from_eventd.statistics().current_buffer_used == 0


async def store_with_trigger(
    tmp_path: Path, metrics: BackendMetrics, trigger: str, *, shared: bool = False
) -> StoreService:
    """A real SQLite store whose ``event_log`` runs ``trigger`` (a statement) before each insert."""
    await trio.Path(tmp_path).mkdir(exist_ok=True)
    sqlite = SQLiteStore(tmp_path / "events.db")
    sqlite.shared = shared  # the state merged inside the write, as backends sharing a store do
    store = StoreService(sqlite, metrics.store)
    await store.open()
    with closing(sqlite3.connect(tmp_path / "events.db")) as raw, raw:
        raw.execute(f"CREATE TRIGGER under_test BEFORE INSERT ON event_log {trigger}")
    return store


async def process_named(store: StoreService, metrics: BackendMetrics, names: list[str]) -> tuple[list[Event], Replies]:
    """Submit one check result of each of ``names`` and run the processor until each is answered."""
    to_handlers, _from_eventd = trio.open_memory_channel[HandlerJob](100)
    eventd = EventProcessor(store, metrics, to_handlers, wall_clock=lambda: NOW)
    events = [check_event(i) for i in range(len(names))]
    for event, name in zip(events, names, strict=True):
        assert event.check is not None
        event.check.metadata.name = name
    replies = Replies(len(events))
    for event in events:
        await eventd.submit(event, replies.reply)
    await run_until_answered(eventd, replies)
    return events, replies


@pytest.mark.parametrize("shared", [False, True], ids=["one-backend", "shared-store"])
async def test_an_event_the_store_refuses_is_refused_alone_and_the_rest_of_its_batch_is_stored(
    tmp_path: Path, shared: bool
) -> None:
    """A batch the store failed is written again one event at a time: an event it refuses for
    what it holds (here by a trigger, as a constraint would) is refused alone, never to be offered
    again, with its check as it came; the others are stored once, with their state merged once.
    An agent's results behind such an event were held for ever, failed with it at every retry."""
    metrics = BackendMetrics.create()
    store = await store_with_trigger(tmp_path, metrics, "WHEN NEW.check_name LIKE 'refused%' BEGIN "
                                     "SELECT RAISE(ABORT, 'refused for the test'); END", shared=shared)  # fmt: skip
    events, replies = await process_named(store, metrics, ["before", "refused", "after", "refused-too",
                                                           "refused-three", "last"])  # fmt: skip
    stored = {e.check_name: e for e in await store.list_events()}
    await store.close()
    outcomes = [replies.outcomes[e.id] for e in events]
    # refusals in a row are the events', not the store's: each is tried, the rest is stored
    assert outcomes == [Outcome.STORED, Outcome.REFUSED, Outcome.STORED, Outcome.REFUSED, Outcome.REFUSED,
                        Outcome.STORED]  # fmt: skip
    assert sorted(stored) == ["after", "before", "last"]
    assert [len(e.check.history) for e in stored.values() if e.check] == [1, 1, 1]
    assert events[1].check is not None
    assert events[1].check.history == []  # as it came
    assert metrics.store_batches_split._value.get() == 1
    assert metrics.store_refused._value.get() == 3


async def test_an_event_alone_the_store_refuses_is_refused_and_one_it_fails_is_failed(tmp_path: Path) -> None:
    """A batch of one event is not split: the store's word on it decides, refused for what it
    holds (the submitter sets it aside) or failed (the submitter offers it again)."""
    metrics = BackendMetrics.create()
    store = await store_with_trigger(tmp_path, metrics, "WHEN NEW.check_name = 'refused' BEGIN "
                                     "SELECT RAISE(ABORT, 'refused for the test'); END")  # fmt: skip
    (refused,), replies = await process_named(store, metrics, ["refused"])
    assert replies.outcomes[refused.id] is Outcome.REFUSED
    await store.close()
    metrics = BackendMetrics.create()
    store = await store_with_trigger(tmp_path / "failing", metrics, "BEGIN SELECT no_such_function(); END")
    (failed,), replies = await process_named(store, metrics, ["any"])
    await store.close()
    assert replies.outcomes[failed.id] is Outcome.FAILED
    assert metrics.store_refused._value.get() == 0


async def test_a_store_failing_of_its_own_fails_the_batch_after_two_tries_and_refuses_nothing(tmp_path: Path) -> None:
    """A store that fails every write (here a trigger calling a function SQLite lacks: an
    operational error, as a full or failing disk gives) is not taken for events it refuses: after
    two failures in a row the rest of the batch fails untried, each to be offered again."""
    metrics = BackendMetrics.create()
    store = await store_with_trigger(tmp_path, metrics, "BEGIN SELECT no_such_function(); END")
    events, replies = await process_named(store, metrics, ["a", "b", "c", "d"])
    await store.close()
    assert [replies.outcomes[e.id] for e in events] == [Outcome.FAILED] * 4
    assert metrics.store.failures.labels("write_batch")._value.get() == 3  # the batch, then two alone
    assert metrics.store_refused._value.get() == 0

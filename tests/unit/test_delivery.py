"""The agent's delivery: what no source should produce, an event over the maximum size, is set
aside at the spool and never sent; its submitter is not left waiting."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import cast

import pytest
import trio
import trio.testing

from pipeline.agent.delivery import FRAME_GAP, FRAME_LINGER, SPOOL_WAIT, Delivery
from pipeline.agent.metrics import AgentMetrics
from pipeline.agent.spool import Spool
from pipeline.errors import SpoolUnavailable, StoreError
from pipeline.model import Check, Entity, Event, ObjectMeta, new_event_id
from pipeline.wire.limits import MAX_EVENT_BYTES
from pipeline.wire.messages import Events
from pipeline.wire.stream import MessageStream


def event(output: str) -> Event:
    return Event(
        entity=Entity(metadata=ObjectMeta(name="web1", namespace="default")),
        check=Check(metadata=ObjectMeta(name="big", namespace="default"), output=output),
        metadata=ObjectMeta(namespace="default"),
        id=new_event_id(),
    )


async def test_an_event_over_the_maximum_size_is_set_aside_at_the_spool_and_the_rest_spooled() -> None:
    spool = Spool(Path(":memory:"), max_bytes=64 * 1024 * 1024)
    spool.open()
    metrics = AgentMetrics.create()
    send, receive = trio.open_memory_channel[Event](10)
    delivery = Delivery(spool, receive, metrics)
    huge, small = event("x" * (MAX_EVENT_BYTES + 10)), event("ok")
    spooled = [delivery.spooled_event(e.id) for e in (huge, small)]
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(delivery.run_spooler)
            await send.send(huge)
            await send.send(small)
            for waiter in spooled:
                await waiter.wait()
            nursery.cancel_scope.cancel()
    assert [row.id for row in spool.after(0, 10)] == [small.id]
    (record,) = await delivery.list_set_aside(10)
    assert (record.id, record.reason, record.entity, record.check) == (huge.id, "too_large", "web1", "big")
    assert record.error == f"event of {record.size} bytes exceeds the maximum event size of {MAX_EVENT_BYTES} bytes"
    assert metrics.registry.get_sample_value("pipeline_agent_events_set_aside_total", {"reason": "too_large"}) == 1


async def test_an_event_taken_off_the_queue_is_spooled_even_when_the_agent_stops_at_once() -> None:
    """The spooler may have taken an event (its submitter told so) just as the agent stops: it
    writes it all the same, so the event is there, on disk, at the next start."""
    spool = Spool(Path(":memory:"), max_bytes=64 * 1024 * 1024)
    spool.open()
    send, receive = trio.open_memory_channel[Event](10)
    delivery = Delivery(spool, receive, AgentMetrics.create())
    taken = event("ok")
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(delivery.run_spooler)
            await trio.testing.wait_all_tasks_blocked()
            await send.send(taken)  # handed straight to the waiting spooler
            nursery.cancel_scope.cancel()
    assert [row.id for row in spool.after(0, 10)] == [taken.id]


async def test_events_just_spooled_are_sent_from_memory_in_order_after_those_read_from_the_spool(
    mock_clock: trio.testing.MockClock,
) -> None:
    spool = Spool(Path(":memory:"), max_bytes=64 * 1024 * 1024)
    spool.open()
    older = [event(f"old {i}") for i in range(3)]
    spool.write([(e.id, e.to_msgpack()) for e in older])
    send, receive = trio.open_memory_channel[Event](10)
    delivery = Delivery(spool, receive, AgentMetrics.create())
    sent: list[str] = []

    class Wire:
        async def send(self, message: Events) -> None:
            sent.extend(Event.from_msgpack(blob).id for blob in message.events if isinstance(blob, bytes))

    newer = [event(f"new {i}") for i in range(3)]
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(delivery.run_spooler)
            nursery.start_soon(delivery.send_loop, cast(MessageStream, Wire()))
            await trio.testing.wait_all_tasks_blocked()
            for new in newer:
                spooled = delivery.spooled_event(new.id)
                await send.send(new)
                await spooled.wait()
                await trio.testing.wait_all_tasks_blocked()
            await delivery.acknowledge([e.id for e in older], [])  # the newer wait for this ack (Nagle)
            mock_clock.jump(FRAME_GAP)  # and for the gap after the frame before
            await trio.testing.wait_all_tasks_blocked()
            await delivery.acknowledge([e.id for e in newer], [])
            nursery.cancel_scope.cancel()
    assert sent == [e.id for e in older + newer]
    assert (spool.count, spool.bytes) == (0, 0)


@pytest.fixture
def mock_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock()  # still, unless a test jumps it


async def test_a_short_frame_waits_for_the_frame_in_flight_to_be_acked_or_the_linger_and_for_the_gap(
    mock_clock: trio.testing.MockClock,
) -> None:
    spool = Spool(Path(":memory:"), max_bytes=64 * 1024 * 1024)
    spool.open()
    send, receive = trio.open_memory_channel[Event](10)
    delivery = Delivery(spool, receive, AgentMetrics.create())
    frames: list[list[str]] = []

    class Wire:
        async def send(self, message: Events) -> None:
            frames.append([Event.from_msgpack(blob).id for blob in message.events if isinstance(blob, bytes)])

    async def spool_all(events: list[Event]) -> None:
        for new in events:
            spooled = delivery.spooled_event(new.id)
            await send.send(new)
            await spooled.wait()
        await trio.testing.wait_all_tasks_blocked()

    first, held, later = [event("first")], [event(f"held {i}") for i in range(3)], [event("later")]
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(delivery.run_spooler)
            nursery.start_soon(delivery.send_loop, cast(MessageStream, Wire()))
            await spool_all(first)  # nothing in flight: sent at once
            assert frames == [[first[0].id]]
            await spool_all(held)
            assert len(frames) == 1  # a frame is in flight: these wait for its ack
            await delivery.acknowledge([first[0].id], [])
            await trio.testing.wait_all_tasks_blocked()
            assert len(frames) == 1  # acknowledged, but no sooner than FRAME_GAP after the first
            mock_clock.jump(FRAME_GAP)
            await trio.testing.wait_all_tasks_blocked()
            assert frames[1:] == [[e.id for e in held]]  # then go together
            await spool_all(later)
            assert len(frames) == 2
            mock_clock.jump(FRAME_LINGER)  # no ack: sent once the linger is over
            await trio.testing.wait_all_tasks_blocked()
            assert frames[2:] == [[later[0].id]]
            nursery.cancel_scope.cancel()


async def test_an_ack_for_an_event_not_sent_on_this_connection_is_ignored_and_the_event_still_sent() -> None:
    """A backend acknowledges the frames it was sent; an id of none of them removes nothing."""
    spool = Spool(Path(":memory:"), max_bytes=64 * 1024 * 1024)
    spool.open()
    queued = event("queued")
    spool.write([(queued.id, queued.to_msgpack())])
    _send, receive = trio.open_memory_channel[Event](10)
    delivery = Delivery(spool, receive, AgentMetrics.create())
    await delivery.acknowledge([queued.id], [])  # no connection yet: nothing was sent
    assert spool.count == 1
    sent: list[str] = []

    class Wire:
        async def send(self, message: Events) -> None:
            sent.extend(Event.from_msgpack(blob).id for blob in message.events if isinstance(blob, bytes))

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(delivery.send_loop, cast(MessageStream, Wire()))
            await trio.testing.wait_all_tasks_blocked()
            await delivery.acknowledge([queued.id], [])
            nursery.cancel_scope.cancel()
    assert sent == [queued.id]
    assert spool.count == 0


async def test_a_failed_spool_write_is_counted_and_tried_again_its_submitter_waiting(
    autojump_clock: trio.testing.MockClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk: the spooler does not stop (nor the agent); the batch is written once it can
    be, and only then is its submitter told the event is on disk."""
    spool = Spool(tmp_path / "spool.db", max_bytes=64 * 1024 * 1024)
    spool.open()
    metrics = AgentMetrics.create()
    send, receive = trio.open_memory_channel[Event](10)
    delivery = Delivery(spool, receive, metrics)
    failures = 3
    real_write = os.write

    def full_disk(fd: int, data: bytes) -> int:
        nonlocal failures
        if failures and fd in {segment.fd for segment in spool.log._segments.values()}:
            failures -= 1
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr("pipeline.agent.spool_log.os.write", full_disk)
    taken = event("ok")
    spooled = delivery.spooled_event(taken.id)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(delivery.run_spooler)
        await send.send(taken)
        await trio.testing.wait_all_tasks_blocked()
        assert not spooled.is_set()  # not on disk yet: not answered
        await spooled.wait()
        nursery.cancel_scope.cancel()
    assert [row.id for row in spool.after(0, 10)] == [taken.id]
    assert metrics.registry.get_sample_value("pipeline_agent_spool_write_failures_total") == 3
    spool.close()


async def test_a_local_event_the_spool_does_not_take_in_time_is_refused_and_never_spooled(
    autojump_clock: trio.testing.MockClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A disk that stays full: a local program's event (agent API, client socket) is refused
    after SPOOL_WAIT rather than held for as long as the disk is full, and, refused, it is not
    written once the disk has room again: neither the one the spooler was retrying nor the one
    still queued behind it. The next event is spooled as usual."""
    spool = Spool(tmp_path / "spool.db", max_bytes=64 * 1024 * 1024)
    spool.open()
    metrics = AgentMetrics.create()
    send, receive = trio.open_memory_channel[Event](10)
    delivery = Delivery(spool, receive, metrics)
    full = True
    real_write = os.write

    def full_disk(fd: int, data: bytes) -> int:
        if full and fd in {segment.fd for segment in spool.log._segments.values()}:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr("pipeline.agent.spool_log.os.write", full_disk)
    retried, queued, later = event("retried"), event("queued"), event("later")
    answers: dict[str, str] = {}

    async def submit(submitted: Event) -> None:
        try:
            await delivery.spool_within(submitted, submitted.to_msgpack(), send.send)
            answers[submitted.check.output if submitted.check else ""] = "spooled"
        except SpoolUnavailable as exc:
            answers[submitted.check.output if submitted.check else ""] = f"refused after {exc.seconds:g} s"

    async with trio.open_nursery() as nursery:
        nursery.start_soon(delivery.run_spooler)
        nursery.start_soon(submit, retried)  # taken by the spooler, whose write keeps failing
        await trio.sleep(SPOOL_WAIT / 2)
        nursery.start_soon(submit, queued)  # behind it, in the queue
        await trio.sleep(SPOOL_WAIT / 2 + 1)
        assert answers == {"retried": "refused after 10 s"}
        await trio.sleep(SPOOL_WAIT / 2)
        assert answers == {"retried": "refused after 10 s", "queued": "refused after 10 s"}
        full = False  # room again: the spooler's next try writes neither
        await submit(later)
        nursery.cancel_scope.cancel()
    assert answers["later"] == "spooled"
    assert [row.id for row in spool.after(0, 10)] == [later.id]
    assert metrics.registry.get_sample_value("pipeline_agent_spool_timeouts_total") == 2
    spool.close()


async def test_events_that_cannot_be_set_aside_stay_spooled_and_are_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    spool = Spool(Path(":memory:"), max_bytes=64 * 1024 * 1024)
    spool.open()
    refused = event("refused")
    (row,), _ = spool.write([(refused.id, refused.to_msgpack())])
    metrics = AgentMetrics.create()
    delivery = Delivery(spool, trio.open_memory_channel[Event](1)[1], metrics)

    def failing(*args: object) -> None:
        raise StoreError("spool.db: database or disk is full")

    monkeypatch.setattr(spool, "set_aside", failing)
    await delivery.set_aside([(row.seq, "rejected", "bad")])  # the delivery goes on
    assert [r.id for r in spool.after(0, 10)] == [refused.id]  # to be sent again, and set aside then
    assert metrics.registry.get_sample_value("pipeline_agent_spool_write_failures_total") == 1

"""The intake journal: events answered once appended, handed to the processor in batches,
replayed after a crash, refused whole when the pipeline stays full."""

from __future__ import annotations

import errno
import os
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
import trio.testing
from prometheus_client import CollectorRegistry

from pipeline.backend.eventd import Outcome, Replays
from pipeline.backend.journal import BUSY_WAIT, LINGER, RETRY_SECONDS, IntakeJournal
from pipeline.backend.journal_files import JournalMetrics, read_segment
from pipeline.backend.refused import RefusedEvents
from pipeline.model import Check, Entity, Event, ObjectMeta

Reply = Callable[[str, Outcome], None]


def event(i: int) -> Event:
    return Event(entity=Entity(metadata=ObjectMeta(name="web1", namespace="default")),
                 check=Check(metadata=ObjectMeta(name=f"c{i}", namespace="default"), output=str(i)),
                 id=f"id-{i}")  # fmt: skip


class Processor:
    """Stands for the event processor: keeps what it is offered; answers when told to."""

    def __init__(self, *, room: bool = True) -> None:
        self.room = room
        self.offered: list[tuple[list[Event], Reply, Replays]] = []
        self.arrived = trio.Event()

    def offer(self, events: Sequence[Event], reply: Reply, *, replays: Replays = Replays.DROP) -> bool:
        if not self.room:
            return False
        self.offered.append((list(events), reply, replays))
        self.arrived.set()
        return True

    def answer(self, outcome: Outcome = Outcome.STORED) -> list[Event]:
        events: list[Event] = []
        for batch, reply, _ in self.offered:
            for e in batch:
                reply(e.id, outcome)
            events.extend(batch)
        self.offered.clear()
        self.arrived = trio.Event()
        return events


def journal(path: Path, processor: Processor, **settings: object) -> IntakeJournal:
    return IntakeJournal(path, processor.offer, JournalMetrics.create(CollectorRegistry()), **settings)  # type: ignore[arg-type]


@asynccontextmanager
async def running(tmp_path: Path) -> AsyncIterator[tuple[IntakeJournal, Processor, trio.Nursery]]:
    """A journal on ``tmp_path``, replayed and running for the block (cancel the nursery to end it)."""
    processor = Processor()
    j = journal(tmp_path, processor)
    await j.replay()
    async with trio.open_nursery() as nursery:
        await nursery.start(j.run)
        yield j, processor, nursery


def segments(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("journal-*.log"))


async def take(j: IntakeJournal, e: Event) -> bool:
    return await j.take(e, e.to_msgpack())


async def test_taken_events_go_to_the_processor_in_one_batch_and_reads_wait_for_them(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    processor = Processor()
    j = journal(tmp_path, processor)
    await j.replay()
    read: list[float] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(j.run)
        for i in range(3):
            assert await take(j, event(i))
        assert processor.offered == []
        assert j.pending == 3

        async def reader() -> None:
            await j.barrier()
            read.append(trio.current_time())

        nursery.start_soon(reader)
        await processor.arrived.wait()  # a read hurries the batch on
        assert read == []
        ((batch, _, replays),) = processor.offered
        assert [e.id for e in batch] == ["id-0", "id-1", "id-2"]
        assert replays is Replays.NONE
        processor.answer()
        await trio.testing.wait_all_tasks_blocked()
        assert len(read) == 1
        assert j.pending == 0
        nursery.cancel_scope.cancel()


async def test_without_a_read_a_batch_waits_out_the_linger(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with running(tmp_path) as (j, processor, nursery):
        start = trio.current_time()
        assert await take(j, event(0))
        await processor.arrived.wait()
        assert trio.current_time() - start == pytest.approx(LINGER)
        nursery.cancel_scope.cancel()


async def journaled_then_lost(tmp_path: Path, count: int) -> None:
    """Journal ``count`` events, then lose the journal as a crash would: nothing stored, nothing closed."""
    first = journal(tmp_path, Processor())
    await first.replay()
    for i in range(count):
        assert await take(first, event(i))


async def replayed(tmp_path: Path, answer: Callable[[Processor], object]) -> IntakeJournal:
    """A new journal on ``tmp_path``, replayed, its processor answering what it is offered with ``answer``."""
    processor = Processor()
    second = journal(tmp_path, processor)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(second.replay)
        await processor.arrived.wait()
        answer(processor)
    return second


async def test_what_was_not_stored_before_a_crash_is_replayed_at_start(tmp_path: Path) -> None:
    await journaled_then_lost(tmp_path, 5)

    def answer(processor: Processor) -> None:
        ((batch, _, replays),) = processor.offered
        assert [e.check.output for e in batch if e.check] == ["0", "1", "2", "3", "4"]
        assert replays is Replays.DROP  # those stored before the crash are dropped by id
        processor.answer()

    second = await replayed(tmp_path, answer)
    assert segments(tmp_path) == ["journal-1.log"]  # the old one is gone
    assert second.metrics.replayed._value.get() == 5


async def test_a_torn_record_ends_its_segment(tmp_path: Path) -> None:
    await journaled_then_lost(tmp_path, 2)
    with (tmp_path / "journal-0.log").open("ab") as segment:
        segment.write(b"\x10\x00\x00\x00\x00\x00")  # a head, cut short

    def answer(processor: Processor) -> None:
        assert [e.id for e in processor.offered[0][0]] == ["id-0", "id-1"]
        processor.answer()

    second = await replayed(tmp_path, answer)
    assert second.metrics.torn._value.get() == 1


async def test_a_full_pipeline_refuses_and_journals_nothing(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    processor = Processor()
    j = journal(tmp_path, processor, max_pending=2)
    await j.replay()
    assert await take(j, event(0))
    assert await take(j, event(1))
    size = (tmp_path / "journal-0.log").stat().st_size
    start = trio.current_time()
    assert not await take(j, event(2))
    assert trio.current_time() - start == pytest.approx(BUSY_WAIT)
    assert (tmp_path / "journal-0.log").stat().st_size == size


async def test_a_failed_store_is_offered_again(tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    async with running(tmp_path) as (j, processor, nursery):
        assert await take(j, event(0))
        await processor.arrived.wait()
        processor.answer(Outcome.FAILED)
        failed_at = trio.current_time()
        await processor.arrived.wait()
        assert trio.current_time() - failed_at == pytest.approx(RETRY_SECONDS)
        ((batch, _, replays),) = processor.offered
        assert [e.id for e in batch] == ["id-0"]
        assert replays is Replays.DROP
        assert j.pending == 1
        processor.answer()
        assert j.pending == 0
        assert j.metrics.retries._value.get() == 1
        nursery.cancel_scope.cancel()


async def test_a_durable_journal_syncs_before_it_answers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    monkeypatch.setattr("os.fdatasync", lambda fd: synced.append(fd))
    j = journal(tmp_path, Processor(), durable=True)
    await j.replay()
    assert await take(j, event(0))
    assert len(synced) == 1


class ShortWrites:
    """``os.write`` for the journal's segment: the first call takes half, later ones ``fail``
    (an OSError) or take the rest; other descriptors are written as usual."""

    def __init__(self, fd: int, *, fail: bool) -> None:
        self.fd, self.fail, self.calls = fd, fail, 0
        self.real = os.write

    def __call__(self, fd: int, data: bytes) -> int:
        if fd != self.fd:
            return self.real(fd, data)
        self.calls += 1
        if self.calls == 1:
            return self.real(fd, bytes(data[: len(data) // 2]))
        if self.fail:
            raise OSError(errno.ENOSPC, "No space left on device")
        return self.real(fd, data)


@pytest.mark.parametrize("fail", [False, True], ids=["completed", "failed"])
async def test_a_short_append_is_completed_or_cut_off_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail: bool
) -> None:
    first = journal(tmp_path, Processor())
    await first.replay()
    assert await take(first, event(0))
    path = tmp_path / "journal-0.log"
    size = path.stat().st_size
    assert first._segment is not None
    monkeypatch.setattr(os, "write", ShortWrites(first._segment.fd, fail=fail))
    if fail:
        with pytest.raises(OSError, match="No space left"):
            await take(first, event(1))
        assert path.stat().st_size == size  # the half written is cut off again
    else:
        assert await take(first, event(1))
    monkeypatch.undo()
    assert await take(first, event(2))
    records, torn = read_segment(path)
    assert not torn
    expected = [0, 2] if fail else [0, 1, 2]
    assert [Event.from_msgpack(r).id for r in records] == [f"id-{i}" for i in expected]


def answer_each(processor: Processor, outcomes: dict[str, Outcome]) -> None:
    """Answer every event offered with its outcome in ``outcomes`` (STORED if not named)."""
    for batch, reply, _ in processor.offered:
        for e in batch:
            reply(e.id, outcomes.get(e.id, Outcome.STORED))
    processor.offered.clear()
    processor.arrived = trio.Event()


def refused_files(directory: Path) -> list[Path]:
    return sorted((directory / "refused").glob("*.json"))


async def test_an_event_the_store_refuses_is_set_aside_as_a_file_and_reads_stop_waiting_for_it(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Refused for what it holds, an event is never stored however often it is offered: it is
    written to ``refused/`` as the JSON the events API takes, forgotten by the journal (no retry,
    nothing for a read to wait for, nothing to replay), and counted."""
    async with running(tmp_path) as (j, processor, nursery):
        assert await take(j, event(0))
        assert await take(j, event(1))
        await processor.arrived.wait()
        answer_each(processor, {"id-1": Outcome.REFUSED})
        await j.barrier()
        assert j.pending == 0
        await trio.sleep(RETRY_SECONDS * 3)
        assert processor.offered == []  # never offered again
        nursery.cancel_scope.cancel()
    (kept,) = refused_files(tmp_path)
    assert kept.name.endswith("Z-id-1.json")
    assert Event.from_json(kept.read_bytes()).to_dict() == event(1).to_dict()
    assert j.metrics.set_aside._value.get() == 1
    assert j.metrics.retries._value.get() == 0
    j.close()
    assert segments(tmp_path) == []  # every event of the segment stored or set aside: nothing to replay


async def test_a_refused_event_whose_file_cannot_be_written_stays_journaled_until_it_can(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    (tmp_path / "refused").write_bytes(b"")  # a file where the directory should be: every write fails
    async with running(tmp_path) as (j, processor, nursery):
        assert await take(j, event(0))
        await processor.arrived.wait()
        answer_each(processor, {"id-0": Outcome.REFUSED})
        # virtual time: each try runs in a thread, which MockClock does not wait for
        while j.metrics.set_aside_failures._value.get() < 2:  # noqa: ASYNC110 (a count, no event to wait on)
            await trio.sleep(RETRY_SECONDS)
        assert j.pending == 1  # a crash now replays it
        (tmp_path / "refused").unlink()
        await j.barrier()
        nursery.cancel_scope.cancel()
    assert [p.name.split("Z-", 1)[1] for p in refused_files(tmp_path)] == ["id-0.json"]
    assert j.metrics.set_aside._value.get() == 1


async def test_an_event_refused_at_replay_is_set_aside_and_the_replay_goes_on(tmp_path: Path) -> None:
    await journaled_then_lost(tmp_path, 3)
    second = await replayed(tmp_path, lambda processor: answer_each(processor, {"id-1": Outcome.REFUSED}))
    assert segments(tmp_path) == ["journal-1.log"]
    (kept,) = refused_files(tmp_path)
    assert Event.from_json(kept.read_bytes()).id == "id-1"
    assert second.metrics.set_aside._value.get() == 1


def test_the_set_aside_files_are_the_newest_kept_named_to_sort_oldest_first(tmp_path: Path) -> None:
    refused = RefusedEvents(tmp_path, kept=2)
    day = 1_800_000_000 * 10**9
    assert refused.keep(event(0), day + 2)[1] == 0
    assert refused.keep(event(1), day + 10)[1] == 0
    path, pruned = refused.keep(event(2), day + 100)
    assert pruned == 1
    assert path.name == "20270115T080000.000000100Z-id-2.json"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["20270115T080000.000000010Z-id-1.json", path.name]
    assert refused.keep(event(2), day + 200) == (path, 0)  # set aside again after a crash: the same file
    odd = Event.from_dict({**event(3).to_dict(), "id": "../escape"})
    assert "/" not in RefusedEvents(tmp_path).keep(odd, day)[0].name.removesuffix(".json")


async def test_the_front_s_events_are_stored_as_the_journal_s_and_those_it_did_not_give_are_read_back(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """The front process (pipeline/backend/front.py) appends to its own segments and gives each
    record over the link; if it ends with records appended (answered) and not given, the
    journal reads them back from the segment, and a segment is deleted once all is stored."""
    from pipeline.backend.journal_files import framed, open_segment

    async with running(tmp_path) as (j, processor, nursery):
        front = j.front_directory / f"journal-{j.next_front_segment}.log"
        fd = open_segment(front)
        records = [event(i).to_msgpack() for i in range(4)]
        os.write(fd, b"".join(framed(r) for r in records))
        os.close(fd)
        for r in records[:2]:  # given over the link
            j.take_front(Event.from_msgpack(r), r, 0)
        assert j.pending == 2
        assert j.recover_front() == 2  # the two it did not give
        assert j.pending == 4
        await processor.arrived.wait()
        assert [e.id for e in processor.answer()] == ["id-0", "id-1", "id-2", "id-3"]
        assert j.pending == 0
        assert not front.exists()  # sealed at the front's end, all stored: deleted
        assert await j.front_done_since() == 4  # the front would be told of all four
        nursery.cancel_scope.cancel()

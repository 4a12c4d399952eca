"""The intake journal: events submitted through the HTTP API, answered 201 once appended to a
file rather than once committed to the store.

Why: answering only after the commit made each request of a serial client wait for a thread
hop and a transaction of its own (about 1,000 µs of backend CPU a result, 800 results/s from
one client); appended here on the trio thread (one ``write(2)``, a few µs), the results are
stored by the event processor in batches while the client sends the next ones.

What a 201 still promises: the event survives a crash of the backend process. A ``write(2)``
that returned is in the kernel's page cache, which outlives the process, as SQLite's WAL at
``synchronous=NORMAL`` (the default store's setting) does. With a ``durable`` store
(``synchronous=FULL``) the journal is ``fdatasync``'ed before the answer, once for all the
requests that arrived meanwhile (group commit). At start, what a previous run journaled and
did not store is replayed before the API serves: the events already stored are dropped by id.

Records are ``<length u32><crc32 u32><record>`` in segment files ``<dir>/journal-<n>.log``,
the record being what the caller hands in and decodes again (the API's: the submission as it
came, its body, path, id and time, so that the event is not encoded a second time per
request); a segment is deleted once it is full and every one of its events is stored. A
record that fails its checksum ends the replay of its segment (counted, logged): it can only
be the torn end of a write that never returned, never a 201.

An event the store refuses for what it holds (:class:`pipeline.errors.StoreRefused`: never
stored however often it is offered) is set aside as a file (:mod:`pipeline.backend.refused`)
and forgotten here, rather than offered again for ever with every read waiting behind it.

Reads keep seeing what was written: :meth:`IntakeJournal.barrier` waits until every event
journaled before it is stored (the API's GETs call it), so a GET right after a 201 sees the event.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import trio

from pipeline.backend.eventd import Outcome, Replays, Reply
from pipeline.backend.intake import Offer, store_each
from pipeline.backend.journal_files import JournalMetrics, append, framed, open_segment, read_segment, segment_number
from pipeline.backend.refused import RefusedEvents
from pipeline.logs import get_logger
from pipeline.model import Event

log = get_logger("backend.journal")

#: A segment is closed, and a new one begun, past this size.
SEGMENT_BYTES = 32 * 1024 * 1024
#: Events replayed to the processor at once at start.
REPLAY_BATCH = 500
#: A segment whose every event is stored is closed (and deleted), and a new one begun, past this size.
ROTATE_IDLE_BYTES = 1024 * 1024
#: Events journaled and not yet stored, at most; a request beyond waits (the pipeline is full).
MAX_PENDING = 1000
#: Seconds a request waits for room before it is answered 503 (nothing journaled).
BUSY_WAIT = 1.0
#: Seconds the first event of a batch waits for more before the batch goes to the processor, and
#: the events that make a batch go at once. The store's cost an event falls with the batch (SQLite,
#: 200 checks: 43 µs and 18 KiB of WAL an event in batches of 20, 18 µs and 6 KiB in batches of
#: 200): 50 ms make batches of 150-200 from one to four busy clients, at up to 50 ms more before a
#: result is handled or listed without a read (not before its 201; a read hurries the batch).
LINGER = 0.05
FLUSH_BATCH = 200
#: Seconds between offers of a batch to a full inbox.
OFFER_RETRY = 0.01
#: Seconds before an event the store failed to write is offered again.
RETRY_SECONDS = 1.0


@dataclass(slots=True, eq=False)
class _Segment:
    path: Path
    fd: int
    size: int = 0
    #: records not yet stored
    outstanding: int = 0
    sealed: bool = False
    #: records taken from it, in all (the front process's: given over the link)
    taken: int = 0


@dataclass(slots=True)
class _Record:
    seq: int
    segment: _Segment
    packed: bytes


@dataclass(slots=True)
class _Barrier:
    seq: int
    done: trio.Event = field(default_factory=trio.Event)


class IntakeJournal:
    """Append, hand to the processor, and forget once stored. One writer: the trio thread."""

    def __init__(
        self, directory: Path, offer: Offer, metrics: JournalMetrics, *, durable: bool = False,
        segment_bytes: int = SEGMENT_BYTES, max_pending: int = MAX_PENDING, linger: float = LINGER,
        decode: Callable[[bytes], Event] = Event.from_msgpack,
    ) -> None:  # fmt: skip
        self.directory = directory
        #: a record back to its event (for replays and retries); raises ValueError
        self.decode = decode
        self.offer = offer
        self.metrics = metrics
        self.durable = durable
        self.segment_bytes = segment_bytes
        self._segment: _Segment | None = None
        self._next_segment = 0
        self._seq = 0
        #: records journaled and not yet stored, oldest first (a dict keeps insertion order)
        self._pending: dict[int, _Record] = {}
        self._barriers: list[_Barrier] = []
        self._synced = 0  # bytes of the current segment known fdatasync'ed
        self._syncing: trio.Event | None = None
        self.max_pending = max_pending
        self.linger = linger
        #: journaled, not yet handed to the processor
        self._buffer: list[tuple[Event, _Record]] = []
        self._filled = trio.Event()  # the buffer has an event
        self._hurry = trio.Event()  # hand the buffer over without waiting out the linger
        self._roomy: trio.Event | None = None  # set when fewer than max_pending are pending
        # A record is in it at most once, and only while pending: max_pending bounds it.
        self._retry_send, self._retry_receive = trio.open_memory_channel[_Record](max_pending)
        #: where the events the store refused go, and those waiting to go there (bounded as the retries)
        self.refused = RefusedEvents(directory / "refused", durable=durable)
        self._refused_send, self._refused_receive = trio.open_memory_channel[_Record](max_pending)
        #: where the front process journals (:mod:`pipeline.backend.front`), its open segments,
        #: and the number of its events done with since it was last told (set: some are)
        self.front_directory = directory / "front"
        self.next_front_segment = 0
        self._fronts: dict[int, _Segment] = {}
        self.front_done = 0
        self.front_progress = trio.Event()
        metrics.pending.set_function(lambda: len(self._pending))

    # -- start: what a previous run left -------------------------------------------------------

    async def replay(self) -> int:
        """Store what earlier runs journaled (the processor must be running), delete their
        segments, and open a new one; the number of events replayed (stored or dropped as already
        stored)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.front_directory.mkdir(exist_ok=True)
        old = sorted(self.directory.glob("journal-*.log"), key=segment_number)
        self._next_segment = segment_number(old[-1]) + 1 if old else 0
        fronts = sorted(self.front_directory.glob("journal-*.log"), key=segment_number)
        self.next_front_segment = segment_number(fronts[-1]) + 1 if fronts else 0
        old += fronts
        replayed = stored = 0
        for path in old:
            records, torn = read_segment(path)
            if torn:
                self.metrics.torn.inc()
                log.warning("journal segment ends on a torn record; the rest is ignored", path=str(path),
                            records=len(records))  # fmt: skip
            for start in range(0, len(records), REPLAY_BATCH):
                events = [event for _, event in self._decoded(records[start : start + REPLAY_BATCH], path)]
                stored += await self._store_replayed(events)
            replayed += len(records)
            path.unlink()
        if replayed:
            self.metrics.replayed.inc(replayed)
            log.info("journal replayed", events=replayed, stored=stored, segments=len(old))
        self._open_segment()
        return replayed

    def _decoded(self, records: Sequence[bytes], path: Path) -> list[tuple[bytes, Event]]:
        """Each record that decodes, with its event (the others counted and logged)."""
        events: list[tuple[bytes, Event]] = []
        for raw in records:
            try:
                events.append((raw, self.decode(raw)))
            except ValueError as exc:  # a record this version cannot take
                self.metrics.undecodable.inc()
                log.error("journal record not replayed: it does not decode", path=str(path), error=exc)
        return events

    async def _store_replayed(self, events: Sequence[Event]) -> int:
        """Store ``events``; how many were not stored before (the others are dropped by id, or
        set aside if the store refuses them)."""
        while True:
            replies = await store_each(self.offer, events, replays=Replays.DROP)
            outcomes = [outcome for _, outcome in replies]
            refused = {event_id for event_id, outcome in replies if outcome is Outcome.REFUSED}
            for event in events:
                if event.id in refused:
                    await self._set_aside(event)
            if Outcome.FAILED not in outcomes:
                return outcomes.count(Outcome.STORED)
            events = [event for event in events if event.id not in refused]  # the rest, tried again
            # Dropped by id on the next try, those that were stored.
            log.error("journal replay: the store failed; trying again", events=len(events))
            await trio.sleep(RETRY_SECONDS)

    def _open_segment(self) -> None:
        path = self.directory / f"journal-{self._next_segment}.log"
        self._next_segment += 1
        fd = open_segment(path)
        if self.durable:  # the file's name must survive a power loss too
            dir_fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        self._segment = _Segment(path, fd)
        self._synced = 0

    # -- taking events -------------------------------------------------------------------------

    async def take(self, event: Event, packed: bytes) -> bool:
        """Journal ``event`` for the processor (``packed``: its record, what ``decode`` makes it
        again from); False, with nothing journaled, when the pipeline stays full for
        :data:`BUSY_WAIT`. Returns once the event survives a crash of the process (and,
        ``durable``, of the machine). Raises OSError when the journal cannot be written (nothing
        journaled)."""
        if len(self._pending) >= self.max_pending and not await self._room():
            return False
        segment = self._segment
        assert segment is not None, "replay() opens the journal"
        data = framed(packed)
        append(segment.fd, data, segment.size)
        record = self._journaled(event, packed, segment)
        segment.size += len(data)
        if segment.size >= self.segment_bytes:
            self._rotate()
        if self.durable and record.segment is self._segment:
            await self._sync_to(segment.size)
        return True

    def _journaled(self, event: Event, packed: bytes, segment: _Segment) -> _Record:
        self._seq += 1
        record = _Record(self._seq, segment, packed)
        segment.outstanding += 1
        self._pending[record.seq] = record
        self._buffer.append((event, record))
        if len(self._buffer) == 1:
            self._filled.set()
        elif len(self._buffer) >= FLUSH_BATCH:
            self._hurry.set()
        self.metrics.appended.inc()
        return record

    # -- the front process's events ------------------------------------------------------------

    def take_front(self, event: Event, packed: bytes, number: int) -> None:
        """An event the front process journaled (and answered) in its segment ``number``: handed
        to the processor as this journal's own, its segment deleted once sealed and all stored."""
        segment = self._fronts.get(number)
        if segment is None:
            segment = self._fronts[number] = _Segment(self.front_directory / f"journal-{number}.log", -1)
            self.next_front_segment = max(self.next_front_segment, number + 1)
        segment.taken += 1
        self._journaled(event, packed, segment)

    def recover_front(self) -> int:
        """The front process ended: take the events it journaled (and answered) but did not give
        yet, from its segments still open, and seal them all; how many."""
        recovered = 0
        for path in sorted(self.front_directory.glob("journal-*.log"), key=segment_number):
            number = segment_number(path)
            segment = self._fronts.get(number)
            if segment is None and number < self.next_front_segment:
                continue  # sealed: every record of it was given before the seal
            records, _ = read_segment(path)  # a torn end was never answered
            rest = records[segment.taken if segment is not None else 0 :]
            for raw, event in self._decoded(rest, path):
                self.take_front(event, raw, number)
                recovered += 1
            if segment is None and not rest:
                path.unlink(missing_ok=True)  # opened, never written
        self.seal_front()
        return recovered

    def front_record_done(self) -> None:
        """A record of the front's is done with: stored, set aside, or dropped (it does not decode)."""
        self.front_done += 1
        self.front_progress.set()

    async def front_done_since(self) -> int:
        """Once some of the front's events are done with: how many, since the last call."""
        await self.front_progress.wait()
        count, self.front_done = self.front_done, 0
        self.front_progress = trio.Event()
        return count

    def seal_front(self, number: int | None = None) -> None:
        """The front process writes no more to its segment ``number`` (None: to any, it ended)."""
        for key in list(self._fronts) if number is None else [number]:
            segment = self._fronts.pop(key, None)
            if segment is not None:
                segment.sealed = True
                self._forget_if_done(segment)

    async def _room(self) -> bool:
        """Wait up to :data:`BUSY_WAIT` for fewer than ``max_pending`` events waiting to be stored."""
        with trio.move_on_after(BUSY_WAIT):
            while len(self._pending) >= self.max_pending:
                if self._roomy is None:
                    self._roomy = trio.Event()
                await self._roomy.wait()
            return True
        return False

    def _rotate(self, *, sync: bool = True) -> None:
        old = self._segment
        assert old is not None
        if self.durable and sync:
            os.fsync(old.fd)  # its records are answered once synced; rare (a segment is large)
        os.close(old.fd)
        old.sealed = True
        self._open_segment()
        self._forget_if_done(old)

    async def _sync_to(self, size: int) -> None:
        """Group commit: one ``fdatasync`` in a thread covers every record written before it
        started; requests arriving meanwhile wait for the next one."""
        segment = self._segment
        while self._synced < size and segment is self._segment:
            if self._syncing is not None:
                await self._syncing.wait()
                continue
            self._syncing = syncing = trio.Event()
            target = segment.size if segment is not None else 0
            try:
                assert segment is not None
                await trio.to_thread.run_sync(os.fdatasync, segment.fd)
                if segment is self._segment:
                    self._synced = max(self._synced, target)
            finally:
                self._syncing = None
                syncing.set()

    def _reply(self, record: _Record) -> Reply:
        return lambda _id, outcome: self._done(record, outcome)

    def _done(self, record: _Record, outcome: Outcome) -> None:
        """The processor's word on a record: stored (or dropped), to be tried again, or refused."""
        if outcome is Outcome.FAILED:
            self.metrics.retries.inc()
            self._retry_send.send_nowait(record)
            return
        if outcome is Outcome.REFUSED:
            self._refused_send.send_nowait(record)  # forgotten once its file is written
            return
        self._forget(record)

    def _forget(self, record: _Record) -> None:
        del self._pending[record.seq]
        record.segment.outstanding -= 1
        self._forget_if_done(record.segment)
        if record.segment.fd < 0:  # the front process's: it counts what it has waiting
            self.front_record_done()
        if self._barriers:
            self._release_barriers()
        if not self._pending and self._segment is not None and self._segment.size >= ROTATE_IDLE_BYTES:
            self._rotate(sync=False)  # all stored (durably, with a durable store): nothing to sync
        if self._roomy is not None and len(self._pending) < self.max_pending:
            self._roomy.set()
            self._roomy = None

    def _forget_if_done(self, segment: _Segment) -> None:
        if segment.sealed and segment.outstanding == 0:
            segment.path.unlink(missing_ok=True)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Hand the journaled events to the processor in batches, and offer again those the store
        failed to write (they stay journaled meanwhile)."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._retry)
            nursery.start_soon(self._set_aside_refused)
            task_status.started()
            await self._hand_over()

    async def _hand_over(self) -> None:
        """Each batch :data:`LINGER` after its first event (sooner when full, or for a read):
        offered one by one, a serial client's events made a store transaction and a thread hop
        each, the very cost the journal takes off the request."""
        while True:
            await self._filled.wait()
            with trio.move_on_after(self.linger):
                await self._hurry.wait()
            offered = self._offer_buffer()
            while not offered:  # the inbox is full (agents' events too): wait for room
                await trio.sleep(OFFER_RETRY)
                offered = self._offer_buffer()

    def _offer_buffer(self) -> bool:
        by_id = {event.id: record for event, record in self._buffer}
        events = [event for event, _ in self._buffer]
        if not self.offer(events, lambda event_id, outcome: self._done(by_id[event_id], outcome),
                          replays=Replays.NONE):  # fmt: skip
            return False
        self._buffer = []
        self._filled = trio.Event()
        self._hurry = trio.Event()
        return True

    async def _retry(self) -> None:
        async with self._retry_receive:
            async for record in self._retry_receive:
                event = self.decode(record.packed)  # the processor changed the one it had
                offered = False
                while not offered:  # until the pipeline has room
                    await trio.sleep(RETRY_SECONDS)
                    offered = self.offer([event], self._reply(record), replays=Replays.DROP)

    async def _set_aside_refused(self) -> None:
        async with self._refused_receive:
            async for record in self._refused_receive:
                await self._set_aside(self.decode(record.packed))  # as it came: the processor changed its copy
                self._forget(record)

    async def _set_aside(self, event: Event) -> None:
        """Write the refused event's file; until it is written (a full disk?), the event stays
        journaled: replayed at a restart, and barriers wait for it."""
        while True:
            try:
                path, pruned = await trio.to_thread.run_sync(self.refused.keep, event, time.time_ns())
                break
            except OSError as exc:
                self.metrics.set_aside_failures.inc()
                log.error("refused event not set aside; it stays journaled and is tried again", event_id=event.id,
                          error=exc)  # fmt: skip
                await trio.sleep(RETRY_SECONDS)
        self.metrics.set_aside.inc()
        log.error("journaled event set aside: the store refused it", event_id=event.id,
                  namespace=event.metadata.namespace, entity=event.entity_name, check=event.check_name,
                  path=str(path))  # fmt: skip
        if pruned:
            log.warning("refused events past the limit: the oldest deleted", deleted=pruned, kept=self.refused.kept)

    # -- reading what was written --------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Events journaled and not yet stored."""
        return len(self._pending)

    async def barrier(self) -> None:
        """Wait until every event journaled before this call is stored (read-your-writes)."""
        if not self._pending:
            return
        self._hurry.set()
        waiter = _Barrier(self._seq)
        self._barriers.append(waiter)
        await waiter.done.wait()

    def _release_barriers(self) -> None:
        oldest = next(iter(self._pending), self._seq + 1)
        still: list[_Barrier] = []
        for waiter in self._barriers:
            if waiter.seq < oldest:
                waiter.done.set()
            else:
                still.append(waiter)
        self._barriers = still

    def close(self) -> None:
        """Close the segment; deleted when all its events are stored (else replayed at start)."""
        segment = self._segment
        if segment is None:
            return
        self._segment = None
        os.close(segment.fd)
        segment.sealed = True
        self._forget_if_done(segment)

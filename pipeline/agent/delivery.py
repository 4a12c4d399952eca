"""From the agent's outbound queue to the backend, through the on-disk spool.

Two tasks: the spooler writes what the agent produces into the spool (one write per
batch, on the event loop: see :mod:`pipeline.agent.spool` for why not in a thread), and,
while connected, the sender sends spooled events in order, keeping at most a window of them
unacknowledged. Acknowledged events are removed from the spool. A new connection starts again
from the oldest spooled event, so nothing unacknowledged is lost to a disconnect, a backend
restart or an agent restart.

Frames are filled by bytes as well as by count (:mod:`pipeline.wire.limits`), so none comes
near the frame limit. An event that cannot be delivered, larger than the maximum event size
or refused by the backend for good, is set aside (see :mod:`pipeline.agent.spool`): counted,
logged once, listable, and out of the way of the events behind it.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NoReturn, TypeVar

import trio

from pipeline.agent.metrics import AgentMetrics
from pipeline.agent.spool import SetAside, Spool, Spooled
from pipeline.errors import SpoolUnavailable, StoreError
from pipeline.logs import get_logger
from pipeline.model import Event
from pipeline.wire.limits import MAX_EVENT_BYTES, plan_frame, too_large_message
from pipeline.wire.messages import Events, Rejected
from pipeline.wire.stream import MessageStream

log = get_logger("agent.delivery")

T = TypeVar("T")

#: Events sent and not yet acknowledged, at most.
SEND_WINDOW = 1000
#: Bytes of events sent and not yet acknowledged, past which the sender waits for acks
#: (a few frames' worth: enough to keep the link busy, not a gigabyte of large events).
SEND_WINDOW_BYTES = 32 * 1024 * 1024
#: Events per ``events`` frame and per spool write, at most.
BATCH_MAX = 200
#: A frame of fewer events than this waits up to ``FRAME_LINGER`` seconds for the frames in
#: flight to be acknowledged (Nagle's rule): the backend pays per frame (a store transaction, a
#: thread hop, an ack), and groups of one to three results a frame cost it about 300 µs a result
#: where full frames cost about 190 (``bench/agent_api.py``). Nothing in flight: sent at once.
#: Under load an ack often takes longer than 5 ms, the first linger: waiting up to 50 ms for a
#: full frame took the agent from about 207 to 193 µs a result and the backend from 174 to 144.
FRAME_FILL = BATCH_MAX
FRAME_LINGER = 0.05
#: A frame of fewer than FRAME_FILL events goes no sooner than this many seconds after the one
#: before it: while results keep coming, a backend that acknowledges within a millisecond or two
#: would otherwise be sent frames of a few results each, and it pays per frame.
FRAME_GAP = 0.01
#: Seconds before a failed spool write (a full or failing disk) is tried again, doubling up to
#: the second figure; the batch's submitters wait meanwhile, and the queue behind them fills.
WRITE_RETRY_FIRST, WRITE_RETRY_MAX = 0.5, 30.0
#: Seconds a local program's event (the agent API's ``POST /events``, the client socket) may
#: take to reach the spool before its submitter is refused (:meth:`Delivery.spool_within`): a
#: write that keeps failing would hold them for as long as it fails. Five tries fit in it. Late
#: submissions are looked for every quarter of it (one timer for all, not a cancel scope each:
#: about 9 µs an event), so a refusal comes 10 to 12.5 s after the event was handed over.
SPOOL_WAIT = 10.0


class Delivery:
    def __init__(self, spool: Spool, outbound: trio.MemoryReceiveChannel[Event], metrics: AgentMetrics) -> None:
        self.spool = spool
        self.outbound = outbound
        self.metrics = metrics
        self._limiter = trio.CapacityLimiter(1)  # one spool connection, one thread at a time
        self._spooled = trio.Event()
        self._acked = trio.Event()
        #: (seq, size) of the events sent and not yet acknowledged, by id, and their bytes
        self._in_flight: dict[str, tuple[int, int]] = {}
        self._in_flight_bytes = 0
        #: events just spooled, for the sender to send without reading them back (see _next_rows)
        self._unsent: list[Spooled] = []
        self._sending = False
        #: submitters waiting to hear that their event is on disk, or acknowledged, by event id
        self._waiting: dict[str, trio.Event] = {}
        self._ack_waiting: dict[str, trio.Event] = {}
        #: the msgpack bytes of events their submitter packed already, by event id
        self._packed: dict[str, bytes] = {}
        #: local submissions not yet written, by id: when their submitter is to be refused
        self._deadlines: dict[str, float] = {}
        self._deadline_set = trio.Event()  # the timer sleeps only while there are deadlines
        #: events withdrawn past their deadline: never written; and those whose submitter is to hear it
        self._withdrawn: set[str] = set()
        self._late: set[str] = set()

        self._sync_due = trio.Event()

    async def _spool_call(self, fn: Callable[..., T], *args: Any) -> T:
        """A rare spool call (set aside, list): in a worker thread."""
        return await trio.to_thread.run_sync(fn, *args, limiter=self._limiter)

    async def _spool_now(self, fn: Callable[..., T], *args: Any) -> T:
        """A hot spool call (append, next frame, remove): on the event loop, after any worker
        thread's call on the same connection is done."""
        try:
            self._limiter.acquire_nowait()  # free, as it nearly always is: no trip through the scheduler
        except trio.WouldBlock:
            async with self._limiter:
                result = fn(*args)
        else:
            try:
                result = fn(*args)
            finally:
                self._limiter.release()
        if self.spool.wants_sync:
            self._sync_due.set()
        return result

    async def run_spooler(self) -> None:
        """Move produced events into the spool, in batches, for as long as the agent runs."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._run_syncs)
            nursery.start_soon(self._refuse_late)
            await self._spool_forever()

    async def _run_syncs(self) -> None:
        while True:
            await self._sync_due.wait()
            self._sync_due = trio.Event()
            await self._spool_call(self.spool.sync)  # the writes wait: see Spool.sync

    async def _spool_forever(self) -> None:
        while True:
            batch = [await self.outbound.receive()]
            # One round of the scheduler: the submitters already woken (requests that came in
            # together) queue theirs too, and one commit serves them all.
            await trio.lowlevel.cancel_shielded_checkpoint()
            while len(batch) < BATCH_MAX:
                try:
                    batch.append(self.outbound.receive_nowait())
                except trio.WouldBlock:
                    break
            await self._store(self._encode(batch))
            self._wake_sender()

    async def _store(self, encoded: list[tuple[str, bytes]]) -> None:
        """Write a batch into the spool. A write that fails (a full disk) is counted, logged and
        tried again, its submitters still waiting, until it is written or the agent stops (then
        they are never answered: nothing is acknowledged that is not on disk)."""
        delay = WRITE_RETRY_FIRST
        while True:
            try:
                if not self._write_at_once(encoded):
                    with trio.CancelScope(shield=True):  # taken off the queue: on disk, even when the agent stops now
                        await self._spool_batch(encoded)
                return
            except StoreError as exc:
                self.metrics.spool_write_failures.inc()
                log.error("spool write failed; trying again", error=exc, events=len(encoded), retry_in=delay)
            await trio.sleep(delay)
            delay = min(delay * 2, WRITE_RETRY_MAX)

    def _encode(self, batch: list[Event]) -> list[tuple[str, bytes]]:
        """(id, msgpack bytes) of each event: as its submitter packed it, else packed now."""
        packed = self._packed
        return [(event.id, packed.pop(event.id, b"") or event.to_msgpack()) for event in batch]

    def _write_at_once(self, encoded: list[tuple[str, bytes]]) -> bool:
        """Write the batch when no sync holds the spool, so with nothing to shield (a cancel scope for
        every batch cost about what the write itself did): when every event fits and no worker
        thread holds the spool, as nearly always. False: nothing done, :meth:`_spool_batch` it."""
        if any(len(blob) > MAX_EVENT_BYTES for _, blob in encoded):
            return False
        try:
            self._limiter.acquire_nowait()
        except trio.WouldBlock:
            return False
        try:
            rows, dropped = self._write_wanted(encoded)
        finally:
            self._limiter.release()
        self._written(rows, dropped)
        return True

    def _write_wanted(self, encoded: list[tuple[str, bytes]]) -> tuple[list[Spooled], int]:
        """Write the batch less its events withdrawn (:meth:`spool_within`), whether they were
        withdrawn queued or while a failed write was tried again: taken out of ``encoded`` itself,
        so that no later try writes them. Every write comes here, on the event loop: an event is
        either written before its submitter stops waiting, or never."""
        if self._withdrawn and (gone := {i for i, _ in encoded if i in self._withdrawn}):
            encoded[:] = [(i, b) for i, b in encoded if i not in gone]
            self._withdrawn -= gone  # in no other batch: forgotten
        return self.spool.write(encoded) if encoded else ([], 0)

    async def _spool_batch(self, encoded: list[tuple[str, bytes]]) -> None:
        # Every source keeps to the limit on its own; this is the net under them all.
        over = [(i, "too_large", too_large_message(len(b)), b) for i, b in encoded if len(b) > MAX_EVENT_BYTES]
        if over:
            self._report_set_aside(*await self._spool_call(self.spool.put_aside, over, time.time()))
            encoded[:] = [(i, b) for i, b in encoded if len(b) <= MAX_EVENT_BYTES]  # a retry: not set aside twice
        if encoded:
            self._written(*await self._spool_now(self._write_wanted, encoded))

    def _written(self, rows: list[Spooled], dropped: int) -> None:
        for row in rows:  # told as the write returns: no deadline can pass between the two
            self._settled(row.id)
        if self._sending and not dropped and len(self._unsent) < SEND_WINDOW:
            self._unsent += rows
        else:
            self._unsent.clear()  # the sender reads the spool instead
        if dropped:
            self.metrics.spool_dropped.inc(dropped)
            log.warning("spool full: oldest events dropped", dropped=dropped, max_bytes=self.spool.max_bytes)
        if self.spool.wants_sync:
            self._sync_due.set()

    async def set_aside(self, entries: list[tuple[int, str, str]]) -> None:
        """Move spooled events (seq, reason, error) out of the way of the ones behind them."""
        try:
            moved, pruned = await self._spool_call(self.spool.set_aside, entries, time.time())
        except StoreError as exc:  # they stay spooled: sent again after a reconnect, and set aside then
            self.metrics.spool_write_failures.inc()
            log.error("events not set aside", error=exc, events=len(entries))
            return
        self._report_set_aside(moved, pruned)

    def _settled(self, event_id: str) -> None:
        """The submitter waiting for ``event_id`` to be spooled may stop: it is written, or set
        aside (never to be written)."""
        waiter = self._waiting.pop(event_id, None)
        if waiter is not None:
            waiter.set()
            self._deadlines.pop(event_id, None)

    def _report_set_aside(self, moved: list[SetAside], pruned: int) -> None:
        for record in moved:
            self._settled(record.id)  # put aside as it came (too large): nobody is left waiting
            waiter = self._ack_waiting.pop(record.id, None)
            if waiter is not None:
                waiter.set()  # nobody waits for an ack that will never come
            self.metrics.events_set_aside.labels(record.reason).inc()
            log.warning("event set aside", event_id=record.id, entity=record.entity, check=record.check,
                        size=record.size, reason=record.reason, error=record.error)  # fmt: skip
        if pruned:
            self.metrics.spool_dropped.inc(pruned)
            log.warning("set-aside list full: oldest dropped", dropped=pruned,
                        max_bytes=self.spool.set_aside_max_bytes)  # fmt: skip

    async def list_set_aside(self, limit: int) -> list[SetAside]:
        """The events set aside, newest first."""
        return await self._spool_call(self.spool.list_set_aside, limit)

    def acknowledged_event(self, event_id: str) -> trio.Event:
        """An event set once the backend acknowledges ``event_id`` (register before submitting)."""
        waiter = self._ack_waiting[event_id] = trio.Event()
        return waiter

    def spooled_event(self, event_id: str, packed: bytes | None = None) -> trio.Event:
        """An event set once ``event_id`` is written to the spool (register before submitting);
        ``packed``: the event's msgpack bytes, when the submitter has them (not encoded again)."""
        waiter = self._waiting[event_id] = trio.Event()
        if packed is not None:
            self._packed[event_id] = packed
        return waiter

    def forget(self, event_id: str) -> None:
        """The event registered with :meth:`spooled_event` was not submitted after all."""
        self._waiting.pop(event_id, None)
        self._packed.pop(event_id, None)
        self._deadlines.pop(event_id, None)

    async def spool_within(self, event: Event, packed: bytes, hand_over: Callable[[Event], Awaitable[None]]) -> None:
        """Hand ``event`` (``packed``: its msgpack bytes) over to be spooled and return once it is
        on disk; SpoolUnavailable when it is not within :data:`SPOOL_WAIT`, the event then
        withdrawn: never written, so that the refusal is the whole truth. ``hand_over`` (the
        source's outlet) waits only while the outbound queue is full."""
        wait = SPOOL_WAIT
        deadline = trio.current_time() + wait
        spooled = self.spooled_event(event.id, packed)
        queue = self.outbound.statistics()
        handed = False
        try:
            if queue.current_buffer_used < queue.max_buffer_size:
                await hand_over(event)  # room in the queue: handed over at once, no timer needed
                handed = True
            else:
                with trio.move_on_at(deadline):
                    await hand_over(event)
                    handed = True
        except BaseException:
            self.forget(event.id)  # never handed over: nothing will wake the waiter
            raise
        if spooled.is_set():  # written while the queue made room for it
            return
        if not handed or trio.current_time() >= deadline:  # the queue stayed full
            self.forget(event.id)
            if handed:
                self._withdrawn.add(event.id)
            self._refused(wait)
        self._deadlines[event.id] = deadline
        self._deadline_set.set()
        await spooled.wait()
        if self._late and event.id in self._late:
            self._late.discard(event.id)
            self._refused(wait)

    def _refused(self, wait: float) -> NoReturn:
        self.metrics.spool_timeouts.inc()
        raise SpoolUnavailable(wait)

    async def _refuse_late(self) -> None:
        """Every quarter of :data:`SPOOL_WAIT`, withdraw the local submissions not yet written past
        their deadline, and wake their submitters to refuse them."""
        while True:
            if not self._deadlines:
                self._deadline_set = trio.Event()
                await self._deadline_set.wait()
            await trio.sleep(SPOOL_WAIT / 4)
            now = trio.current_time()
            for event_id in [i for i, deadline in self._deadlines.items() if deadline <= now]:
                del self._deadlines[event_id]
                waiter = self._waiting.pop(event_id, None)
                if waiter is None:  # written (it has no deadline then), or given up on: nothing to withdraw
                    continue
                self._packed.pop(event_id, None)
                self._withdrawn.add(event_id)
                self._late.add(event_id)
                waiter.set()

    def _wake_sender(self) -> None:
        self._spooled.set()
        self._spooled = trio.Event()

    async def send_loop(self, conn: MessageStream) -> None:
        """Send every spooled event, oldest first, within the window (one connection's life)."""
        self._in_flight.clear()
        self._in_flight_bytes = 0
        self._unsent.clear()
        last_sent = 0
        last_frame = -FRAME_GAP
        resent = self.spool.count
        if resent:
            log.info("sending spooled events", count=resent)
        self._sending = True
        try:
            while True:
                if self._in_flight and 0 < len(self._unsent) < FRAME_FILL:
                    with trio.move_on_after(FRAME_LINGER):
                        await self._acked.wait()
                if 0 < len(self._unsent) < FRAME_FILL and trio.current_time() < last_frame + FRAME_GAP:
                    await trio.sleep_until(last_frame + FRAME_GAP)
                room = SEND_WINDOW - len(self._in_flight)
                if room <= 0 or self._in_flight_bytes >= SEND_WINDOW_BYTES:
                    await self._acked.wait()
                    continue
                spooled = self._spooled
                rows = self._next_rows(last_sent, min(room, BATCH_MAX))
                if rows is None:
                    frame = await self._spool_now(self.spool.next_frame, last_sent, min(room, BATCH_MAX))
                    if frame.too_large:
                        await self.set_aside(
                            [(seq, "too_large", too_large_message(size)) for seq, size in frame.too_large]
                        )
                    last_sent = max(last_sent, frame.last_seq)
                    rows = frame.rows
                    if not rows:
                        if not frame.too_large:
                            await spooled.wait()
                        continue
                else:
                    last_sent = rows[-1].seq
                await conn.send(Events(tuple(row.event for row in rows)))
                last_frame = trio.current_time()
                for row in rows:
                    self._in_flight[row.id] = (row.seq, len(row.event))
                    self._in_flight_bytes += len(row.event)
                self.metrics.events_sent.inc(len(rows))
                self.metrics.events_unacked.set(len(self._in_flight))
        finally:
            self._sending = False
            self._unsent.clear()

    def _next_rows(self, last_sent: int, max_count: int) -> list[Spooled] | None:
        """The next frame's events from those just spooled, when they are the very next ones
        (the sender has caught up with the spool); None: read the spool."""
        unsent = self._unsent
        skip = 0
        while skip < len(unsent) and unsent[skip].seq <= last_sent:
            skip += 1
        del unsent[:skip]
        if not unsent or unsent[0].seq != last_sent + 1:
            return None
        plan = plan_frame([len(row.event) for row in unsent[:max_count]], max_count=max_count)
        if plan.too_large or not plan.send:
            return None
        rows = unsent[: len(plan.send)]
        del unsent[: len(plan.send)]
        return rows

    async def acknowledge(self, ids: Sequence[str], rejected: Sequence[Rejected]) -> None:
        """The backend has these events (forget them) or refused them for good (set them aside).
        Only events sent on this connection are acknowledged: a backend answers the frames it
        was sent, and an id of none of them is ignored (its event, if spooled, is sent again)."""
        refused = []
        for item in rejected:
            sent = self._in_flight.pop(item.id, None)
            if sent is not None:
                self._in_flight_bytes -= sent[1]
                refused.append((sent[0], item.id, item.error))
        if refused:
            await self.set_aside([(seq, "rejected", error) for seq, _, error in refused])
        seqs = []
        for event_id in ids:
            sent = self._in_flight.pop(event_id, None)
            if sent is not None:
                seqs.append(sent[0])
                self._in_flight_bytes -= sent[1]
        try:
            await self._spool_now(self.spool.remove_seqs, seqs)
        except StoreError as exc:  # they stay spooled: sent again after a reconnect, dropped there as replays
            self.metrics.spool_write_failures.inc()
            log.error("acknowledged events not removed from the spool", error=exc, events=len(seqs))
        self.metrics.events_acked.inc(len(seqs))
        self.metrics.events_rejected.inc(len(refused))
        self.metrics.events_unacked.set(len(self._in_flight))
        for event_id in [*ids, *(event_id for _, event_id, _ in refused)]:
            waiter = self._ack_waiting.pop(event_id, None)
            if waiter is not None:
                waiter.set()
        self._acked.set()
        self._acked = trio.Event()

"""From the agent's outbound queue to the backend, through the on-disk spool.

Two tasks: the spooler writes what the agent produces into the spool (one thread hop per
batch), and, while connected, the sender sends spooled events in order, keeping at most a
window of them unacknowledged. Acknowledged events are removed from the spool. A new
connection starts again from the oldest spooled event, so nothing unacknowledged is lost
to a disconnect, a backend restart or an agent restart.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import trio

from pipeline.agent.spool import Spool
from pipeline.logs import get_logger
from pipeline.metrics import AgentMetrics
from pipeline.model import Event
from pipeline.wire import protocol
from pipeline.wire.stream import MessageStream

log = get_logger("agent.delivery")

T = TypeVar("T")

#: Events sent and not yet acknowledged, at most.
SEND_WINDOW = 1000
#: Events per ``events`` frame and per spool write, at most.
BATCH_MAX = 200


class Delivery:
    def __init__(self, spool: Spool, outbound: trio.MemoryReceiveChannel[Event], metrics: AgentMetrics) -> None:
        self.spool = spool
        self.outbound = outbound
        self.metrics = metrics
        self._limiter = trio.CapacityLimiter(1)  # one spool connection, one thread at a time
        self._spooled = trio.Event()
        self._acked = trio.Event()
        self._in_flight: set[str] = set()
        #: submitters waiting to hear that their event is on disk, or acknowledged, by event id
        self._waiting: dict[str, trio.Event] = {}
        self._ack_waiting: dict[str, trio.Event] = {}

    async def _spool_call(self, fn: Callable[..., T], *args: Any) -> T:
        return await trio.to_thread.run_sync(fn, *args, limiter=self._limiter)

    async def run_spooler(self) -> None:
        """Move produced events into the spool, in batches, for as long as the agent runs."""
        while True:
            batch = [await self.outbound.receive()]
            while len(batch) < BATCH_MAX:
                try:
                    batch.append(self.outbound.receive_nowait())
                except trio.WouldBlock:
                    break
            dropped = await self._spool_call(self.spool.append, [(e.id, e.to_msgpack()) for e in batch])
            if dropped:
                self.metrics.spool_dropped.inc(dropped)
                log.warning("spool full: oldest events dropped", dropped=dropped, max_bytes=self.spool.max_bytes)
            for event in batch:
                waiter = self._waiting.pop(event.id, None)
                if waiter is not None:
                    waiter.set()
            self._wake_sender()

    def acknowledged_event(self, event_id: str) -> trio.Event:
        """An event set once the backend acknowledges ``event_id`` (register before submitting)."""
        waiter = self._ack_waiting[event_id] = trio.Event()
        return waiter

    def spooled_event(self, event_id: str) -> trio.Event:
        """An event set once ``event_id`` is written to the spool (register before submitting)."""
        waiter = self._waiting[event_id] = trio.Event()
        return waiter

    def _wake_sender(self) -> None:
        self._spooled.set()
        self._spooled = trio.Event()

    async def send_loop(self, conn: MessageStream) -> None:
        """Send every spooled event, oldest first, within the window (one connection's life)."""
        self._in_flight.clear()
        last_sent = 0
        resent = self.spool.count
        if resent:
            log.info("sending spooled events", count=resent)
        while True:
            room = SEND_WINDOW - len(self._in_flight)
            if room <= 0:
                await self._acked.wait()
                continue
            spooled = self._spooled
            rows = await self._spool_call(self.spool.after, last_sent, min(room, BATCH_MAX))
            if not rows:
                await spooled.wait()
                continue
            await conn.send(protocol.events([row.event for row in rows]))
            last_sent = rows[-1].seq
            self._in_flight.update(row.id for row in rows)
            self.metrics.events_sent.inc(len(rows))
            self.metrics.events_unacked.set(len(self._in_flight))

    async def acknowledge(self, ids: Sequence[str], rejected: Sequence[dict[str, str]]) -> None:
        """The backend has these events (or refused them for good): forget them."""
        refused = [str(item.get("id", "")) for item in rejected]
        for item in rejected:
            log.error("backend rejected event", event_id=item.get("id"), error=item.get("error"))
        await self._spool_call(self.spool.remove, [*ids, *refused])
        self._in_flight.difference_update(ids)
        self._in_flight.difference_update(refused)
        self.metrics.events_acked.inc(len(ids))
        self.metrics.events_rejected.inc(len(refused))
        self.metrics.events_unacked.set(len(self._in_flight))
        for event_id in [*ids, *refused]:
            waiter = self._ack_waiting.pop(event_id, None)
            if waiter is not None:
                waiter.set()
        self._acked.set()
        self._acked = trio.Event()

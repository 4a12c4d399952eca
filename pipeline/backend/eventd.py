"""The backend's event path: dedupe by id -> state -> store -> handlers.

Submissions arrive on one bounded channel from every source (agent transport, HTTP API). A
single task takes them in batches: replays are dropped by id, each check event's state is
computed from the previous result of the same check (kept in memory, loaded from the store at
start), the batch is written in one transaction, each submitter is told the outcome, and
the events go on to the handlers.
"""

from __future__ import annotations

import enum
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import trio

from pipeline.core.state import apply_result
from pipeline.errors import StoreError
from pipeline.logs import get_logger
from pipeline.metrics import BackendMetrics
from pipeline.model import DEFAULT_NAMESPACE, Check, Event
from pipeline.model.entity import proxy_entity
from pipeline.store.base import EventStore

log = get_logger("backend.eventd")

#: Submissions waiting for the event processor, at most.
INBOX_SIZE = 2000
#: Events per store transaction, at most.
BATCH_MAX = 500
#: Event ids remembered in memory to drop replays without asking the store.
RECENT_IDS = 200_000

CheckKey = tuple[str, str, str]


class Outcome(enum.Enum):
    STORED = "stored"  # durably stored (check events) or accepted into the pipeline (metrics only)
    DUPLICATE = "duplicate"  # seen before: already stored, nothing changed
    FAILED = "failed"  # the store failed; the submitter should retry later


Reply = Callable[[str, Outcome], None]


@dataclass(slots=True)
class Submission:
    event: Event
    reply: Reply | None = None


def attribute_to_proxy(event: Event) -> None:
    """An event whose check names ``proxy_entity_name`` is about that entity, as in Sensu Go."""
    check = event.check
    if check is None or not check.proxy_entity_name or event.entity_name == check.proxy_entity_name:
        return
    event.entity = proxy_entity(check.proxy_entity_name, event.namespace or DEFAULT_NAMESPACE)


def check_key(event: Event) -> CheckKey:
    return (event.namespace or DEFAULT_NAMESPACE, event.entity_name, event.check_name)


class EventProcessor:
    def __init__(
        self,
        store: EventStore,
        metrics: BackendMetrics,
        handlers: trio.MemorySendChannel[Event],
        *,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self._handlers = handlers
        self._wall_clock = wall_clock
        self._checks: dict[CheckKey, Check] = {}
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._store_limiter = trio.CapacityLimiter(1)
        self.inbox, self._receive = trio.open_memory_channel[Submission](INBOX_SIZE)
        metrics.queues.watch("eventd_inbox", self.inbox)  # type: ignore[arg-type]

    async def load_state(self) -> None:
        """Read every check's latest result from the store (once, at start)."""
        self._checks = await trio.to_thread.run_sync(self.store.latest_checks, limiter=self._store_limiter)
        log.info("state loaded", checks=len(self._checks))

    async def submit(self, event: Event, reply: Reply | None = None) -> None:
        await self.inbox.send(Submission(event, reply))

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        async with self._receive:
            while True:
                batch = [await self._receive.receive()]
                while len(batch) < BATCH_MAX:
                    try:
                        batch.append(self._receive.receive_nowait())
                    except trio.WouldBlock:
                        break
                await self.process_batch(batch)

    async def process_batch(self, batch: Sequence[Submission]) -> None:
        fresh, duplicates = await self._split_replays(batch)
        for sub in duplicates:
            self.metrics.events_duplicate.inc()
            _reply(sub, Outcome.DUPLICATE)
        now = int(self._wall_clock())
        states: dict[CheckKey, Check] = {}
        to_store = []
        for sub in fresh:
            event = sub.event
            if not event.timestamp:
                event.timestamp = now
            attribute_to_proxy(event)
            if event.check is not None:
                key = check_key(event)
                event.check = apply_result(event.check, states.get(key) or self._checks.get(key))
                states[key] = event.check
                to_store.append(event)
        if to_store and not await self._write(to_store):
            for sub in fresh:
                _reply(sub, Outcome.FAILED)
            return
        self._checks.update(states)
        for sub in fresh:
            self._remember(sub.event.id)
            _reply(sub, Outcome.STORED)
        for sub in fresh:
            await self._handlers.send(sub.event)
            self.metrics.events_processed.inc()

    async def _split_replays(self, batch: Sequence[Submission]) -> tuple[list[Submission], list[Submission]]:
        unknown = {s.event.id for s in batch if s.event.id not in self._recent}
        try:
            known = await trio.to_thread.run_sync(self.store.known_ids, unknown, limiter=self._store_limiter)
        except StoreError as exc:
            log.error("store lookup failed", error=exc)
            known = set()
        fresh, duplicates, seen = [], [], set()
        for sub in batch:
            event_id = sub.event.id
            if event_id in self._recent or event_id in known or event_id in seen:
                duplicates.append(sub)
            else:
                seen.add(event_id)
                fresh.append(sub)
        return fresh, duplicates

    async def _write(self, events: list[Event]) -> bool:
        try:
            await trio.to_thread.run_sync(self.store.write_batch, events, limiter=self._store_limiter)
        except StoreError as exc:
            log.error("store write failed", events=len(events), error=exc)
            return False
        self.metrics.events_stored.inc(len(events))
        self.metrics.store_batches.observe(len(events))
        return True

    def _remember(self, event_id: str) -> None:
        self._recent[event_id] = None
        if len(self._recent) > RECENT_IDS:
            self._recent.popitem(last=False)


def _reply(sub: Submission, outcome: Outcome) -> None:
    if sub.reply is not None:
        sub.reply(sub.event.id, outcome)

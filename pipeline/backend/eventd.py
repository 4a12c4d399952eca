"""The backend's event path: dedupe by id -> state -> store -> handlers.

Submissions arrive on one bounded channel from every source (agent transport, HTTP API), and
keepalives on a second one that is always taken first, so that a backlog of check results
never delays them (a late keepalive would be a false alarm). A single task takes them in
batches: the agent transport's replays are dropped by id (an event written through the API is
always a new result: a used id is replaced), a proxy entity met for the first time is registered
(:mod:`pipeline.backend.entity_registry`), each check event's state is
computed from the previous result of the same check (kept in memory, loaded from the store at
start), the batch is written in one transaction together with a handler job per event (the
outbox: the handlers of an acknowledged event run even if the backend dies right after), each
submitter is told the outcome, and the jobs go on to the handlers.

The processor is the one owner of check state: deleting an event or an entity is a command on
its inbox (:mod:`pipeline.backend.checkstate`), done in turn with the results around it, and
what it stored or forgot it tells liveness as notices on a bounded channel.
"""

from __future__ import annotations

import enum
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import trio

from pipeline.backend.checkstate import (
    ChecksForgotten,
    ChecksStored,
    Command,
    DeleteEntity,
    DeleteEvent,
    Notice,
)
from pipeline.backend.entity_registry import EntityRegistry, key_of
from pipeline.backend.recent_metrics import RecentMetrics
from pipeline.backend.silences import Silences
from pipeline.core.push.common import give_change_handlers
from pipeline.core.result_merge import ResultMerge, still_current
from pipeline.core.state import apply_result
from pipeline.core.workflows import names_handlers
from pipeline.errors import StoreError, StoreRefused
from pipeline.logs import get_logger
from pipeline.metrics import BackendMetrics
from pipeline.model import Check, CheckHistory, Entity, Event, new_event_id
from pipeline.model.outbox import HandlerJob
from pipeline.store.base import CheckKey, check_key
from pipeline.store.service import StoreService

log = get_logger("backend.eventd")

#: Submissions waiting for the event processor, at most.
INBOX_SIZE = 2000
#: Keepalives waiting, at most.
PRIORITY_INBOX_SIZE = 1000
#: Events per store transaction, at most.
BATCH_MAX = 500
#: Event ids remembered in memory to drop replays without asking the store.
RECENT_IDS = 200_000


class Outcome(enum.Enum):
    STORED = "stored"  # durably stored, with its handler job (check events), or its handler job (metrics only)
    DUPLICATE = "duplicate"  # seen before: already stored, nothing changed
    FAILED = "failed"  # the store failed; the submitter should retry later
    # the store refused this event for what it holds (alone, while it takes others): not stored,
    # and never will be; the submitter sets it aside (journal, agent) or says so (API) rather
    # than offering it again for ever
    REFUSED = "refused"
    SUPERSEDED = "superseded"  # made here from a result a newer one overtook: dropped (not stored, not handled)


Reply = Callable[[str, Outcome], None]


class Replays(enum.Enum):
    """What a submission's id says."""

    DROP = "drop"  # the agent transport's: an id already taken is a replay, dropped
    NONE = "none"  # made by this backend: it cannot be a replay (no store lookup)
    RENEW = "renew"  # a client's through the API: always a new result, a used id is replaced


@dataclass(slots=True)
class Submission:
    event: Event
    reply: Reply | None = None
    replays: Replays = Replays.DROP
    #: the event shows its entity alive (False for what the backend made: a failing keepalive, a ttl)
    alive: bool = True
    #: the history the check's latest result must still have for this event to be taken (what a
    #: failing keepalive or ttl failure was made from); None: taken whatever came before
    expect: list[CheckHistory] | None = None


class EventProcessor:
    def __init__(
        self,
        store: StoreService,
        metrics: BackendMetrics,
        handlers: trio.MemorySendChannel[HandlerJob],
        *,
        wall_clock: Callable[[], float] = time.time,
        notices: trio.MemorySendChannel[Notice] | None = None,
        silences: Silences | None = None,
        change_handlers: Sequence[str] = (),
        recent_metrics: RecentMetrics | None = None,
    ) -> None:
        self.store = store
        #: told the metric points of every event taken (the dashboard's recent window)
        self.recent_metrics = recent_metrics
        #: the handlers of change events that name none (``--change-handlers``)
        self.change_handlers = list(change_handlers)
        self._notices = notices
        self.silences = silences
        self.metrics = metrics
        self._handlers = handlers
        self._wall_clock = wall_clock
        self._checks: dict[CheckKey, Check] = {}
        self._recent: OrderedDict[str, None] = OrderedDict()
        #: every entity, and when each was last seen; proxies are registered here
        self.entities = EntityRegistry()
        self.inbox, self._receive = trio.open_memory_channel[Submission | Command](INBOX_SIZE)
        self.priority_inbox, self._receive_priority = trio.open_memory_channel[Submission](PRIORITY_INBOX_SIZE)
        self._work = trio.Event()
        #: told the checks whose latest event was stored or deleted (the dashboard's live
        #: stream); called on eventd's task, so each must return at once and never wait
        self.watchers: list[Callable[[Sequence[CheckKey]], None]] = []
        metrics.queues.watch("eventd_inbox", self.inbox)  # type: ignore[arg-type]
        metrics.queues.watch("eventd_priority_inbox", self.priority_inbox)  # type: ignore[arg-type]

    @property
    def checks(self) -> dict[CheckKey, Check]:
        """Every check's latest result, as the processor holds it (read it, never change it)."""
        return self._checks

    async def load_state(self) -> None:
        """Read every check's latest result from the store (once, at start)."""
        self._checks = await self.store.latest_checks()
        self.entities.load(await self.store.list_entities(), self._checks)
        log.info("state loaded", checks=len(self._checks), entities=len(self.entities))

    async def submit(
        self, event: Event, reply: Reply | None = None, *, alive: bool = True, expect: list[CheckHistory] | None = None
    ) -> None:
        await self.inbox.send(Submission(event, reply, alive=alive, expect=expect))
        self._work.set()

    def offer(self, events: Sequence[Event], reply: Reply | None = None, *, replays: Replays = Replays.DROP) -> bool:
        """Queue every one of ``events`` at once, or none of them when the inbox lacks the room:
        the HTTP API answers 503 rather than hold a client on a full pipeline."""
        stats = self.inbox.statistics()
        if stats.max_buffer_size - stats.current_buffer_used < len(events):
            return False
        for event in events:
            self.inbox.send_nowait(Submission(event, reply, replays))
        self._work.set()
        return True

    async def submit_priority(
        self, event: Event, reply: Reply | None = None, *, alive: bool = True, expect: list[CheckHistory] | None = None
    ) -> None:
        """Submit ahead of every ordinary submission (keepalives)."""
        await self.priority_inbox.send(Submission(event, reply, alive=alive, expect=expect))
        self._work.set()

    async def handle_only(self, event: Event) -> None:
        """Send an event to the handlers with no check state (registration, deregistration),
        through the outbox like any other."""
        try:
            (seq,) = await self.store.put_jobs([event])
        except StoreError as exc:
            self.metrics.store.failures.labels("put_jobs").inc()
            log.error("handler job not stored; handled without the outbox", event_id=event.id, error=exc)
            seq = 0
        await self._handlers.send(HandlerJob(seq, event))
        self.metrics.events_processed.inc()

    async def delete_event(self, namespace: str, entity: str, check: str) -> bool:
        """Delete a check's latest event and forget its state (the event log keeps its past);
        False when there was none. Raises StoreError."""
        command = DeleteEvent(namespace, entity, check)
        await self._command(command)
        return command.deleted

    async def delete_entity(self, namespace: str, name: str) -> list[Event]:
        """Remove an entity and its latest events, and forget its checks' state: a new entity of
        that name starts afresh. Returns the events it had. Raises StoreError."""
        command = DeleteEntity(namespace, name)
        await self._command(command)
        return command.events

    async def _command(self, command: Command) -> None:
        await self.inbox.send(command)
        self._work.set()
        await command.done.wait()
        if command.error is not None:
            raise command.error

    def _take_batch(self) -> list[Submission | Command]:
        batch: list[Submission | Command] = []
        channels: tuple[trio.MemoryReceiveChannel[Submission | Command], ...] = (self._receive_priority, self._receive)
        for channel in channels:
            while len(batch) < BATCH_MAX:
                try:
                    batch.append(channel.receive_nowait())
                except trio.WouldBlock:
                    break
        return batch

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        async with self._receive, self._receive_priority:
            while True:
                self._work = trio.Event()
                batch = self._take_batch()
                if not batch:
                    await self._work.wait()
                    continue
                await self._process(batch)

    async def _process(self, batch: Sequence[Submission | Command]) -> None:
        """Submissions in batches, each command between the submissions before and after it."""
        submissions: list[Submission] = []
        for item in batch:
            if isinstance(item, Submission):
                submissions.append(item)
                continue
            if submissions:
                await self.process_batch(submissions)
                submissions = []
            await self._execute(item)
        if submissions:
            await self.process_batch(submissions)

    async def _execute(self, command: Command) -> None:
        try:
            forgotten = await self._delete(command)
        except StoreError as exc:
            self.metrics.store.failures.labels(type(command).__name__).inc()
            log.error("delete failed", command=type(command).__name__, error=exc)
            command.error = exc
            return
        finally:
            command.done.set()
        for key in forgotten:
            self._checks.pop(key, None)
        self._tell_watchers(forgotten)
        if forgotten:
            await self._notify(ChecksForgotten(tuple(forgotten)))

    async def _delete(self, command: Command) -> list[CheckKey]:
        """Do the command in the store; the checks whose state it ends."""
        if isinstance(command, DeleteEvent):
            key = (command.namespace, command.entity, command.check)
            command.deleted = await self.store.delete_event(*key)
            if command.deleted:
                log.info("event deleted", entity=command.entity, check=command.check, namespace=command.namespace)
            return [key]
        command.events = await self.store.delete_entity(command.namespace, command.name)
        self.entities.forget((command.namespace, command.name))
        if self.recent_metrics is not None:
            self.recent_metrics.forget(command.namespace, command.name)
        return [k for k in self._checks if k[:2] == (command.namespace, command.name)]

    def _tell_watchers(self, keys: Sequence[CheckKey]) -> None:
        if keys:
            for watcher in self.watchers:
                watcher(keys)

    async def _notify(self, notice: Notice) -> None:
        if self._notices is not None:
            await self._notices.send(notice)

    async def process_batch(self, batch: Sequence[Submission]) -> bool:
        """Store ``batch`` and tell each submitter the outcome; False when the store failed."""
        fresh, duplicates = await self._split_replays(batch)
        shared = self.store.shared
        # the checks as they came, put back if the store fails: the state is merged into them
        received = [(sub.event, sub.event.check) for sub in fresh]
        for sub in duplicates:
            self.metrics.events_duplicate.inc()
            _reply(sub, Outcome.DUPLICATE)
        wall = self._wall_clock()
        now = int(wall)
        states: dict[CheckKey, Check] = {}
        to_store: list[Event] = []
        new_entities: list[Entity] = []
        taken: list[Submission] = []
        # looked up once a batch rather than once an event
        change_handlers, silences, checks = self.change_handlers, self.silences, self._checks
        attribute, seen = self.entities.attribute, self.entities.seen
        for sub in fresh:
            event = sub.event
            if not shared and sub.expect is not None and event.check is not None:
                # made from a result a newer one (this batch's included) overtook: dropped. A
                # shared store checks this under the check's lock, in the merge.
                key = check_key(event)
                if not still_current(sub.expect, states.get(key) or self._checks.get(key)):
                    self._superseded(sub)
                    continue
            taken.append(sub)
            if not event.timestamp:
                event.timestamp = now
            if change_handlers:
                give_change_handlers(event, change_handlers)
            if event.check is not None and (entity := attribute(event)) is not None:
                new_entities.append(entity)
            if sub.alive:
                seen(event, wall)
            if event.check is not None:
                if not shared:
                    key = check_key(event)
                    event.check = apply_result(event.check, states.get(key) or checks.get(key))
                    if silences is not None:
                        silences.apply(event, now)
                    states[key] = event.check
                to_store.append(event)
        fresh = taken
        handled = [sub.event for sub in fresh if names_handlers(sub.event)]  # the others need no job
        for entity in new_entities:
            await self._register(entity)
        # A shared store merges each result with its check's latest one under the check's lock
        # (another backend may have written it a moment ago): see pipeline/core/result_merge.py.
        merge = None
        if shared:
            merge = ResultMerge(self.silences.snapshot(now) if self.silences else None, now)
            merge.expected = {sub.event.id: sub.expect for sub in fresh if sub.expect is not None}
        rows = await self._write(to_store, handled, merge) if fresh else []
        if isinstance(rows, StoreError):
            for event, check in received:
                event.check = check
            if len(fresh) > 1:
                await self._one_by_one(fresh)
                return False
            if isinstance(rows, StoreRefused):  # alone: this event's content, not the store
                for sub in fresh:
                    self._refused(sub, rows)
                return True
            for sub in fresh:
                _reply(sub, Outcome.FAILED)
            return False
        if merge is not None:
            fresh = self._merged(fresh, to_store, merge, states)
        jobs = dict(zip(map(id, handled), rows, strict=True))
        self._checks.update(states)
        if self.silences is not None:
            await self.silences.end_pending()
        self._tell_watchers(list(states))
        if to_store:
            await self._notify(ChecksStored(tuple((k, c) for k, c in states.items()), self._wall_clock()))
        recent, observe = self._recent, self.recent_metrics.observe if self.recent_metrics is not None else None
        for sub in fresh:
            recent[sub.event.id] = None  # the ids stored lately, trimmed once for the batch below
            if sub.reply is not None:
                sub.reply(sub.event.id, Outcome.STORED)
            if observe is not None:
                observe(sub.event)
        while len(recent) > RECENT_IDS:
            recent.popitem(last=False)
        send_nowait = self._handlers.send_nowait
        for sub in fresh:
            seq = jobs.get(id(sub.event))
            if seq is None:  # names no handler nor pipeline: nothing to run, no job to send
                continue
            job = HandlerJob(seq, sub.event)
            try:  # no task switch per job while the runner's inbox has room
                send_nowait(job)
            except trio.WouldBlock:
                await self._handlers.send(job)
        self.metrics.events_processed.inc(len(fresh))
        return True

    async def _one_by_one(self, subs: Sequence[Submission]) -> None:
        """A batch the store failed, again one submission at a time: an event the store refuses
        for what it holds is refused alone, not failed with every event batched with it at every
        retry (an agent's results behind it were held for ever). Two failures of the store's own
        in a row: the rest fail with them, to be offered again by their submitters."""
        self.metrics.store_batches_split.inc()
        log.warning("store failed a batch: its events are written one by one", events=len(subs))
        failed_in_a_row = 0
        for at, sub in enumerate(subs):
            if failed_in_a_row == 2:
                for rest in subs[at:]:
                    _reply(rest, Outcome.FAILED)
                return
            failed_in_a_row = 0 if await self.process_batch([sub]) else failed_in_a_row + 1

    def _refused(self, sub: Submission, error: StoreRefused) -> None:
        event = sub.event
        self.metrics.store_refused.inc()
        log.error("the store refused an event; it is not stored, and its submitter does not offer it again",
                  event_id=event.id, namespace=event.metadata.namespace, entity=event.entity_name,
                  check=event.check_name, error=error)  # fmt: skip
        _reply(sub, Outcome.REFUSED)

    def _superseded(self, sub: Submission) -> None:
        self.metrics.events_superseded.inc()
        log.debug("event superseded", event_id=sub.event.id, entity=sub.event.entity_name, check=sub.event.check_name)
        _reply(sub, Outcome.SUPERSEDED)

    def _merged(
        self, fresh: list[Submission], stored: Sequence[Event], merge: ResultMerge, states: dict[CheckKey, Check]
    ) -> list[Submission]:
        """What a shared store's merge did, taken in: each check's state, the silences ended;
        ``fresh`` without the events it dropped."""
        for event in stored:
            if event.id not in merge.superseded:
                assert event.check is not None
                states[check_key(event)] = event.check
        if self.silences is not None:
            self.silences.metrics.events_silenced.inc(merge.silenced)
            for namespace, name in merge.ended:
                self.silences.resolved(namespace, [name])
        for sub in fresh:
            if sub.event.id in merge.superseded:
                self._superseded(sub)
        return [sub for sub in fresh if sub.event.id not in merge.superseded]

    async def _register(self, entity: Entity) -> None:
        """Store a proxy entity met for the first time, unless one of its name was stored meanwhile
        (an agent's registration): the stored one stands."""
        try:
            if await self.store.add_entity(entity):
                self.metrics.proxies_registered.inc()
                log.info("proxy entity registered", entity=entity.name, namespace=entity.metadata.namespace)
                return
            stored = await self.store.get_entity(entity.metadata.namespace, entity.name)
        except StoreError as exc:
            self.metrics.store.failures.labels("add_entity").inc()
            log.error("proxy entity not registered; tried again with its next event", entity=entity.name,
                      error=exc)  # fmt: skip
            self.entities.forget(key_of(entity))
            return
        if stored is not None:
            self.entities.saved(stored)

    async def _split_replays(self, batch: Sequence[Submission]) -> tuple[list[Submission], list[Submission]]:
        unknown = {s.event.id for s in batch if s.replays is not Replays.NONE and s.event.id not in self._recent}
        known: set[str] = set()
        if unknown:
            try:
                known = await self.store.known_ids(unknown)
            except StoreError as exc:
                self.metrics.store.failures.labels("known_ids").inc()
                log.error("store lookup failed", error=exc)
        fresh, duplicates, seen = [], [], set()
        for sub in batch:
            event_id = sub.event.id
            if event_id in self._recent or event_id in known or event_id in seen:
                if sub.replays is not Replays.RENEW:
                    duplicates.append(sub)
                    continue
                # a new result (sensuctl's resolve sends the event back with its id): ids stay
                # unique in the event log, and handlers that de-duplicate by id see it
                sub.event.id = new_event_id()
                self.metrics.events_renumbered.inc()
            seen.add(sub.event.id)
            fresh.append(sub)
        return fresh, duplicates

    async def _write(
        self, events: list[Event], outbox: list[Event], merge: ResultMerge | None
    ) -> list[int] | StoreError:
        """Store the check events and a handler job per event of ``outbox``, at once; the jobs'
        rows, or the store's error (nothing was written)."""
        try:
            jobs = await self.store.write_batch(events, outbox, merge=merge)
        except StoreError as exc:
            self.metrics.store.failures.labels("write_batch").inc()
            log.error("store write failed", events=len(events), jobs=len(outbox), error=exc)
            return exc
        self.metrics.events_stored.inc(len(events))
        self.metrics.store_batches.observe(len(events))
        return jobs


def _reply(sub: Submission, outcome: Outcome) -> None:
    if sub.reply is not None:
        sub.reply(sub.event.id, outcome)

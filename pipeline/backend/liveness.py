"""Watching for silence: agents' keepalives, checks' ttl, and the entities agents register.

Keepalives come straight from the transport (never queued behind check results) and are
stored as passing ``keepalive`` events through the event processor's priority inbox. What the
event processor stored or forgot arrives as notices on a bounded channel (a ttl is armed for
each check result stored, disarmed for each check forgotten). One task
sleeps until the next deadline: an agent silent past its warning or critical timeout gets a
failing ``keepalive`` event, a check whose ttl passed gets a failing result. Everything
needed to carry on after a restart is in the store: the latest keepalive event of each agent
(its ``last_ok`` is when it was last seen, its check holds the timeouts) and each check's
latest result (its ``ttl``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import trio

from pipeline.backend.checkstate import ChecksStored, Notice
from pipeline.backend.eventd import EventProcessor
from pipeline.backend.membership import BackendsChanged, Membership
from pipeline.core.deadlines import Deadlines
from pipeline.core.keepalive import (
    KEEPALIVE,
    deregistration_events,
    failing_keepalive,
    keepalive_deadline,
    passing_keepalive,
    registration_event,
    ttl_expired,
)
from pipeline.errors import StoreError
from pipeline.logs import get_logger
from pipeline.metrics import BackendMetrics
from pipeline.model import DEFAULT_NAMESPACE, Check, Entity, Event
from pipeline.store.base import CheckKey
from pipeline.store.service import StoreService

log = get_logger("backend.liveness")

EntityKey = tuple[str, str]

#: The longest sleep between looks at the deadlines (the wall clock may jump).
MAX_SLEEP = 1.0
#: Due checks read from a shared store at each look, at most.
DUE_BATCH = 5000
#: Seconds before a due check looked at and left is looked at again (shared store).
LOOK_AGAIN = 10.0


def _first_timeout(check: Check) -> int:
    return min((t for t in (check.timeout, check.ttl) if t > 0), default=0)


class Liveness:
    def __init__(
        self,
        eventd: EventProcessor,
        store: StoreService,
        metrics: BackendMetrics,
        notices: trio.MemoryReceiveChannel[Notice] | None = None,
        *,
        wall_clock: Callable[[], float] = time.time,
        membership: Membership | None = None,
        backends_changed: trio.MemoryReceiveChannel[BackendsChanged] | None = None,
    ) -> None:
        self.eventd = eventd
        self._notices = notices
        #: which entities this backend watches when backends share the store (None: all of them)
        self.membership = membership
        self._backends_changed = backends_changed
        #: when each due check was last looked at and left (shared store): looked at again later
        self._looked: dict[CheckKey, float] = {}
        self.store = store
        self.metrics = metrics
        self._wall_clock = wall_clock
        self.keepalives: Deadlines[EntityKey] = Deadlines()
        self.ttls: Deadlines[CheckKey] = Deadlines()
        self._last_seen: dict[EntityKey, float] = {}
        self._failing: set[EntityKey] = set()
        self._changed = trio.Event()

    # -- state ---------------------------------------------------------------------------------

    def load(self, latest: dict[CheckKey, Check]) -> None:
        """Resume watching after a start. Every deadline is at least one timeout away, so that
        agents have the time to reconnect to a backend that was down before they are called silent."""
        now = self._wall_clock()
        for (namespace, entity, name), check in latest.items():
            if name == KEEPALIVE:
                first = _first_timeout(check)
                if first:
                    key = (namespace, entity)
                    self._last_seen[key] = float(check.last_ok or check.executed)
                    if check.status != 0:
                        self._failing.add(key)
                    self.keepalives.set(key, now + first)
            elif check.ttl > 0:
                self.ttls.set((namespace, entity, name), now + check.ttl)
        log.info("liveness loaded", agents=len(self.keepalives), ttl_checks=len(self.ttls))

    def apply(self, notice: Notice) -> None:
        """What the event processor did: arm (or disarm) the ttl of every check result it stored;
        disarm that of every check it forgot."""
        if isinstance(notice, ChecksStored):
            for key, check in notice.checks:
                if key[2] == KEEPALIVE:
                    continue
                if check.ttl > 0:
                    self.ttls.set(key, notice.at + check.ttl)
                else:
                    self.ttls.cancel(key)
        else:
            for key in notice.keys:
                self.ttls.cancel(key)
        self._wake()

    async def _follow(self, notices: trio.MemoryReceiveChannel[Notice]) -> None:
        async with notices:
            async for notice in notices:
                self.apply(notice)

    def _wake(self) -> None:
        self._changed.set()

    # -- what agents say -----------------------------------------------------------------------

    async def register(self, entity: Entity) -> None:
        """An agent connected: store its entity; a new one gets Sensu's ``registration`` event."""
        try:
            created = await self.store.put_entity(entity)
        except StoreError as exc:
            log.error("entity not stored", entity=entity.name, error=exc)
            return
        self.eventd.entities.saved(entity)  # a proxy of its name, if there was one, is this agent now
        if created:
            log.info("entity registered", entity=entity.name, namespace=entity.metadata.namespace)
            self.metrics.entities_registered.inc()
            await self.eventd.handle_only(registration_event(entity, self._wall_clock()))

    async def keepalive(self, received: Event) -> None:
        """A keepalive from a connected agent: it is alive now."""
        now = self._wall_clock()
        event = passing_keepalive(received, now)
        assert event.check is not None
        key = (event.namespace or DEFAULT_NAMESPACE, event.entity_name)
        self._last_seen[key] = now
        if key in self._failing:
            self._failing.discard(key)
            log.info("agent is back", entity=key[1], namespace=key[0])
        deadline = keepalive_deadline(now, now, event.check.timeout, event.check.ttl)
        if deadline is None:
            self.keepalives.cancel(key)
        else:
            self.keepalives.set(key, deadline)
        self.metrics.keepalives_received.inc()
        await self.eventd.submit_priority(event)
        self._wake()

    async def deregister(self, namespace: str, name: str) -> None:
        """Remove an entity and its events; the handlers hear each event resolved."""
        try:
            events = await self.eventd.delete_entity(namespace, name)
        except StoreError as exc:
            log.error("entity not deregistered", entity=name, error=exc)
            return
        entity = next((e.entity for e in events if e.check_name == KEEPALIVE and e.entity is not None), None)
        entity = entity or next((e.entity for e in events if e.entity is not None), None)
        key = (namespace, name)
        self.keepalives.cancel(key)
        self._failing.discard(key)
        self._last_seen.pop(key, None)
        self.metrics.entities_deregistered.inc()
        log.info("entity deregistered", entity=name, namespace=namespace, events=len(events))
        if entity is not None:
            for event in deregistration_events(entity, events, self._wall_clock()):
                await self.eventd.handle_only(event)

    # -- silence -------------------------------------------------------------------------------

    @property
    def shared(self) -> bool:
        """Backends share the store: what is due is found in it, whoever stored it, and only the
        entity's owner raises it (see :mod:`pipeline.core.cluster`)."""
        return self.store.shared

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            if self._notices is not None:
                nursery.start_soon(self._follow, self._notices)
            if self._backends_changed is not None:
                nursery.start_soon(self._follow_backends, self._backends_changed)
            task_status.started()
            await (self._watch_store() if self.shared else self._watch())

    async def _follow_backends(self, changes: trio.MemoryReceiveChannel[BackendsChanged]) -> None:
        """Entities changed owner: look at what is due again at once, the new owner's share included."""
        async with changes:
            async for _ in changes:
                self._looked.clear()
                self._wake()

    def _owns(self, namespace: str, entity: str) -> bool:
        return self.membership is None or self.membership.owns(namespace, entity)

    async def _watch_store(self) -> None:
        """With a shared store: each second, raise what the store says is due among the entities
        this backend owns. A check looked at and left (a silent agent's ttl, a deregistered
        entity) is looked at again after its own interval, not every second."""
        while True:
            self._changed = trio.Event()
            now = self._wall_clock()
            try:
                due = await self.store.due_checks(int(now), DUE_BATCH)
            except StoreError as exc:
                self.metrics.store.failures.labels("due_checks").inc()
                log.error("cannot read what is due", error=exc)
                due = []
            for key in due:
                namespace, entity, name = key
                if not self._owns(namespace, entity):
                    continue
                if self._looked.get(key, -1.0) > now:
                    continue
                if name == KEEPALIVE:
                    raised = await self._keepalive_silent((namespace, entity), now)
                else:
                    raised = await self._ttl_expired(key, now)
                # left: not every second; raised: not again before the event is stored
                self._looked[key] = now + (2 * MAX_SLEEP if raised else LOOK_AGAIN)
            if len(self._looked) > DUE_BATCH:
                self._looked = {k: t for k, t in self._looked.items() if t > now}
            with trio.move_on_after(MAX_SLEEP):
                await self._changed.wait()

    async def _watch(self) -> None:
        """Sleep until the next deadline; raise what is due."""
        while True:
            self._changed = trio.Event()
            now = self._wall_clock()
            for key in self.keepalives.pop_due(now):
                await self._keepalive_silent(key, now)
            for check_key in self.ttls.pop_due(now):
                await self._ttl_expired(check_key, now)
            upcoming = [t for t in (self.keepalives.next_at(), self.ttls.next_at()) if t is not None]
            wait = min([MAX_SLEEP, *(t - now for t in upcoming)])
            with trio.move_on_after(max(wait, 0.0)):
                await self._changed.wait()

    async def _stored_event(self, namespace: str, entity: str, check: str) -> Event | None:
        try:
            return await self.store.get_event(namespace, entity, check)  # fmt: skip
        except StoreError as exc:
            log.error("stored event unreadable", entity=entity, check=check, error=exc)
            return None

    async def _keepalive_silent(self, key: EntityKey, now: float) -> bool:
        namespace, name = key
        stored = await self._stored_event(namespace, name, KEEPALIVE)
        if stored is None or stored.check is None:
            return False  # deregistered or deleted: nothing to watch any more
        if stored.entity is not None and stored.entity.deregister:
            await self.deregister(namespace, name)  # Sensu Go deregisters a silent agent that asked for it
            return False
        last_seen = float(stored.check.last_ok or stored.check.executed)
        if not self.shared:  # one backend: it saw every keepalive itself, to the fraction of a second
            last_seen = self._last_seen.get(key, last_seen)
        event = failing_keepalive(stored, last_seen, now)
        assert event.check is not None
        self._failing.add(key)
        deadline = keepalive_deadline(last_seen, now, stored.check.timeout, stored.check.ttl)
        if deadline is not None:
            self.keepalives.set(key, deadline)
        self.metrics.keepalive_failures.labels(str(event.check.status)).inc()
        log.warning("agent silent", entity=name, namespace=namespace, status=event.check.status,
                    silent_for=int(now - last_seen))  # fmt: skip
        # made here: says nothing of when it was seen; dropped if a keepalive overtakes it
        await self.eventd.submit_priority(event, alive=False, expect=stored.check.history)
        return True

    async def _agent_silent(self, namespace: str, entity: str) -> bool:
        if not self.shared:
            return (namespace, entity) in self._failing
        keepalive = await self._stored_event(namespace, entity, KEEPALIVE)
        return keepalive is not None and keepalive.check is not None and keepalive.check.status != 0

    async def _ttl_expired(self, key: CheckKey, now: float) -> bool:
        namespace, entity, name = key
        if await self._agent_silent(namespace, entity):
            return False  # the agent itself is silent: its keepalive says so; ttl resumes with the next result
        stored = await self._stored_event(namespace, entity, name)
        if stored is None or stored.check is None or stored.check.ttl <= 0:
            return False
        if stored.check.executed + stored.check.ttl > now:
            return False  # a result came in meanwhile and armed the ttl again
        event = ttl_expired(stored, now)
        self.metrics.ttl_expired.inc()
        log.warning("check ttl expired", entity=entity, check=name, namespace=namespace, ttl=stored.check.ttl)
        await self.eventd.submit(event, alive=False, expect=stored.check.history)
        return True

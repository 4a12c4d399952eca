"""Two backends on one store: each agent's silence is raised once, by the entity's owner, and
when a backend dies (it stops beating, without leaving) the other takes its entities over."""

from __future__ import annotations

import time

import trio

from pipeline.backend.checkstate import open_notices
from pipeline.backend.eventd import EventProcessor
from pipeline.backend.liveness import Liveness
from pipeline.backend.membership import BackendsChanged, Membership
from pipeline.core.cluster import Heartbeat, entity_key, owner
from pipeline.core.keepalive import KEEPALIVE, keepalive_check
from pipeline.metrics import BackendMetrics
from pipeline.model import Entity, Event, ObjectMeta, new_event_id
from pipeline.model.outbox import HandlerJob
from pipeline.store.service import StoreService
from tests.store_support import StoreFactory

AGENTS = [f"web{i}" for i in range(12)]
#: seconds of silence before an agent's keepalive fails (then again every as many seconds)
WARNING = 2
BEAT, LEASE = 0.2, 1.0


class Node:
    """One backend's event processor, liveness and membership, on the shared file."""

    def __init__(self, name: str, make: StoreFactory) -> None:
        self.name = name
        self.metrics = BackendMetrics.create()
        self.store = StoreService(make(name), self.metrics.store)
        self.jobs, self.handled = trio.open_memory_channel[HandlerJob](10_000)
        to_liveness, notices = open_notices()
        self.eventd = EventProcessor(self.store, self.metrics, self.jobs, notices=to_liveness)
        changes, changed = trio.open_memory_channel[BackendsChanged](16)
        self.membership = Membership(self.store, Heartbeat(name, 0.0), self.metrics, changes, interval=BEAT,
                                     lease=LEASE)  # fmt: skip
        self.liveness = Liveness(self.eventd, self.store, self.metrics, notices, membership=self.membership,
                                 backends_changed=changed)  # fmt: skip

    async def run(self, *, task_status: trio.TaskStatus[trio.CancelScope] = trio.TASK_STATUS_IGNORED) -> None:
        await self.store.open()
        async with trio.open_nursery() as nursery:
            await nursery.start(self.membership.run)
            await nursery.start(self.eventd.run)
            await nursery.start(self.liveness.run)
            task_status.started(nursery.cancel_scope)


def keepalive(agent: str) -> Event:
    now = time.time()
    entity = Entity(entity_class="agent", metadata=ObjectMeta(name=agent, namespace="default"))
    return Event(timestamp=int(now), entity=entity, check=keepalive_check(1, WARNING, 0, "default", now),
                 metadata=ObjectMeta(namespace="default"), id=new_event_id())  # fmt: skip


async def failures(node: Node, into: trio.MemorySendChannel[tuple[str, str]]) -> None:
    """Tell ``into`` (backend, agent) of each failing keepalive ``node`` hands its handlers."""
    async for job in node.handled:
        check = job.event.check
        if check is not None and check.metadata.name == KEEPALIVE and check.status != 0:
            await into.send((node.name, job.event.entity_name))


async def test_each_silence_is_raised_once_by_its_owner_and_a_dead_backends_share_moves(
    shared_db: StoreFactory,
) -> None:
    a, b = Node("backend-a", shared_db), Node("backend-b", shared_db)
    told, heard = trio.open_memory_channel[tuple[str, str]](1000)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(a.run)
            b_scope = await nursery.start(b.run)
            nursery.start_soon(failures, a, told)
            nursery.start_soon(failures, b, told.clone())
            while set(a.membership.live) != {"backend-a", "backend-b"} or set(b.membership.live) != set(
                a.membership.live
            ):
                await a.membership.beat()  # the first beats of each: both known to both
                await b.membership.beat()
            for agent in AGENTS:  # every agent connected to backend A, whoever owns it
                await a.liveness.keepalive(keepalive(agent))
            first: dict[str, list[str]] = {}
            while len(first) < len(AGENTS):
                backend, agent = await heard.receive()
                first.setdefault(agent, []).append(backend)
            assert all(len(raised) == 1 for raised in first.values()), first  # once, not by both
            owners = {agent: owner(entity_key("default", agent), ["backend-a", "backend-b"]) for agent in AGENTS}
            assert {agent: raised[0] for agent, raised in first.items()} == owners
            assert set(owners.values()) == {"backend-a", "backend-b"}  # both had a share

            # backend B dies: its store goes (it cannot even leave), its tasks stop
            await b.store.close()
            b_scope.cancel()
            taken_over: set[str] = set()
            b_share = {agent for agent, name in owners.items() if name == "backend-b"}
            while taken_over != b_share:
                backend, agent = await heard.receive()
                assert backend == "backend-a"
                if agent in b_share:
                    taken_over.add(agent)
            assert a.membership.live == ("backend-a",)
            nursery.cancel_scope.cancel()
    await a.store.close()

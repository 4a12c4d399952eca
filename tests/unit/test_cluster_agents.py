"""Check executions across backends sharing a store: an agent connected to either backend is
seen by both, and an execution asked of one reaches the agent through the other."""

from __future__ import annotations

import time
from collections.abc import Sequence

from pipeline.backend.cluster_agents import ClusterAgents
from pipeline.core.cluster import Heartbeat
from pipeline.metrics import BackendMetrics
from pipeline.model import CheckConfig, Entity, ObjectMeta
from pipeline.model.asset import Asset
from pipeline.model.check import HookConfig
from pipeline.store.service import StoreService
from tests.store_support import StoreFactory


class Transport:
    """A backend's agent transport, as far as ClusterAgents sees it: who is connected, and what
    each was asked to run."""

    def __init__(self, *agents: tuple[str, list[str]]) -> None:
        self.entities = [Entity(entity_class="agent", metadata=ObjectMeta(name=name, namespace="default"),
                                subscriptions=subs) for name, subs in agents]  # fmt: skip
        self.ran: list[tuple[str, str, str]] = []

    def connected_entities(self) -> list[Entity]:
        return self.entities

    async def execute_on(self, agent: str, check: CheckConfig, hooks: list[HookConfig],
                         entity: Entity | None = None, assets: Sequence[Asset] = ()) -> bool:  # fmt: skip
        if agent not in {e.name for e in self.entities}:
            return False
        self.ran.append((agent, check.metadata.name, entity.name if entity else ""))
        return True


def node(make: StoreFactory, name: str, transport: Transport) -> ClusterAgents:
    store = make(name)
    store.open()
    store.beat(Heartbeat(name, time.time()))
    return ClusterAgents(StoreService(store, BackendMetrics.create().store), transport, name, BackendMetrics.create())


async def test_an_execution_reaches_an_agent_connected_to_the_other_backend(shared_db: StoreFactory) -> None:
    a_agents, b_agents = Transport(("web1", ["linux"])), Transport(("web2", ["linux"]), ("db1", ["db"]))
    a, b = node(shared_db, "a", a_agents), node(shared_db, "b", b_agents)
    for each in (a, b, a):
        await each.sync()
    assert a.connected_agents("default", ["linux"]) == ["web1", "web2"]
    assert a.connected_agents("default", ["entity:db1"]) == ["db1"]
    assert b.connected_agents("other", ["linux"]) == []
    check = CheckConfig(metadata=ObjectMeta(name="disk", namespace="default"), command="check_disk",
                        subscriptions=["linux"], interval=60)  # fmt: skip
    assert await a.execute(check, [], ["linux"]) == 2  # web1 here, web2 through b's queue
    assert await a.execute_on("nobody", check, []) is False
    proxy = Entity(entity_class="proxy", metadata=ObjectMeta(name="router", namespace="default"))
    assert await a.execute_on("db1", check, [], proxy) is True
    assert a_agents.ran == [("web1", "disk", "")]
    assert b_agents.ran == []
    await b.sync()  # b takes its queue
    assert b_agents.ran == [("web2", "disk", ""), ("db1", "disk", "router")]
    await b.sync()
    assert len(b_agents.ran) == 2  # taken once
    b_agents.entities = []  # web2 and db1 leave b
    await b.sync()
    await a.sync()
    assert a.connected_agents("default", ["linux", "db"]) == ["web1"]
    assert a.metrics.executions_forwarded.labels("sent")._value.get() == 2
    assert b.metrics.executions_forwarded.labels("delivered")._value.get() == 2
    for each in (a, b):
        await each.store.close()

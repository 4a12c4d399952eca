"""The agents connected to any backend sharing the store, as the backend scheduler and ad hoc
executions ("Run now", ``POST .../execute``) see them.

Each backend publishes, every :data:`SYNC_INTERVAL`, which agents are connected to it (with
their subscriptions), and reads everyone's. An execution for an agent connected here goes
straight to it; one for an agent connected elsewhere is queued in the store for that agent's
backend, which takes its queue at the same pace and sends each request on. On a store no other
backend shares, this is the local transport and nothing else.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any, Protocol

import msgpack
import trio

from pipeline.core.cluster import LEASE, Connection
from pipeline.errors import StoreError, ValidationError
from pipeline.logs import get_logger
from pipeline.metrics import BackendMetrics
from pipeline.model import DEFAULT_NAMESPACE, CheckConfig, Entity, entity_subscription
from pipeline.model.asset import Asset
from pipeline.model.check import HookConfig
from pipeline.model.codec import decode, encode
from pipeline.store.service import StoreService

log = get_logger("backend.cluster_agents")

#: Seconds between two publications of this backend's agents and two looks at its queue.
SYNC_INTERVAL = 0.5
#: Execution requests taken from the queue at once.
TAKE_BATCH = 500


class LocalAgents(Protocol):
    """What this needs of the agent transport."""

    def connected_entities(self) -> list[Entity]: ...

    async def execute_on(
        self,
        agent: str,
        check: CheckConfig,
        hooks: list[HookConfig],
        entity: Entity | None = None,
        assets: Sequence[Asset] = (),
    ) -> bool: ...


def _connection(entity: Entity) -> Connection:
    return (entity.metadata.namespace or DEFAULT_NAMESPACE, entity.name, sorted(entity.subscriptions))


def _subscribed(agent: str, subscriptions: Sequence[str], wanted: set[str]) -> bool:
    return bool(wanted & {*subscriptions, entity_subscription(agent)})


class ClusterAgents:
    def __init__(
        self,
        store: StoreService,
        local: LocalAgents,
        backend: str,
        metrics: BackendMetrics,
        *,
        interval: float = SYNC_INTERVAL,
        lease: float = LEASE,
    ) -> None:
        self.store = store
        self.local = local
        self.backend = backend
        self.metrics = metrics
        self.interval = interval
        self.lease = lease
        #: (namespace, agent) -> (backend, subscriptions) of the agents connected elsewhere
        self._remote: dict[tuple[str, str], tuple[str, list[str]]] = {}
        self._published: list[Connection] | None = None

    # -- the scheduler's view (pipeline.backend.scheduler.Agents) ------------------------------

    def connected_agents(self, namespace: str, subscriptions: list[str]) -> list[str]:
        """The agents of ``namespace`` with one of ``subscriptions``, connected here or elsewhere."""
        wanted = set(subscriptions)
        here = {
            e.name
            for e in self.local.connected_entities()
            if (e.metadata.namespace or DEFAULT_NAMESPACE) == namespace and _subscribed(e.name, e.subscriptions, wanted)
        }
        there = {agent for (ns, agent), (_, subs) in self._remote.items() if ns == namespace
                 and _subscribed(agent, subs, wanted)}  # fmt: skip
        return sorted(here | there)

    async def execute(
        self,
        check: CheckConfig,
        hooks: list[HookConfig],
        subscriptions: list[str],
        entity: Entity | None = None,
        assets: Sequence[Asset] = (),
    ) -> int:
        """Ask every agent of ``subscriptions``, wherever it is connected; how many were asked."""
        namespace = check.metadata.namespace or DEFAULT_NAMESPACE
        asked = 0
        for agent in self.connected_agents(namespace, subscriptions):
            asked += await self.execute_on(agent, check, hooks, entity, assets)
        return asked

    async def execute_on(
        self,
        agent: str,
        check: CheckConfig,
        hooks: list[HookConfig],
        entity: Entity | None = None,
        assets: Sequence[Asset] = (),
    ) -> bool:
        """Ask ``agent`` to run ``check`` now: at once if connected here, else through its
        backend's queue (False when it is connected nowhere, or the queue cannot be written)."""
        if await self.local.execute_on(agent, check, hooks, entity, assets):
            return True
        namespace = check.metadata.namespace or DEFAULT_NAMESPACE
        remote = self._remote.get((namespace, agent))
        if remote is None:
            return False
        request = {
            "agent": agent,
            "check": encode(check),
            "hooks": [encode(h) for h in hooks],
            "assets": [encode(a) for a in assets],
            "entity": None if entity is None else encode(entity),
        }
        try:
            await self.store.put_executions([(remote[0], msgpack.packb(request, use_bin_type=True))])
        except StoreError as exc:
            self.metrics.store.failures.labels("put_executions").inc()
            log.error("check execution not queued for another backend", check=check.metadata.name, agent=agent,
                      backend=remote[0], error=exc)  # fmt: skip
            return False
        self.metrics.executions_forwarded.labels("sent").inc()
        return True

    # -- keeping the view and delivering ------------------------------------------------------

    async def sync(self) -> None:
        """Publish this backend's agents (when they changed), read the others', deliver what is
        queued for this backend."""
        try:
            mine = sorted(_connection(e) for e in self.local.connected_entities())
            if mine != self._published:
                await self.store.set_connections(mine)
                self._published = mine
            self._remote = {(ns, agent): (backend, subs) for ns, agent, backend, subs in
                            await self.store.connections(self.lease) if backend != self.backend}  # fmt: skip
            requests = await self.store.take_executions(TAKE_BATCH)
        except StoreError as exc:
            self.metrics.store.failures.labels("cluster_agents").inc()
            log.error("cannot share the connected agents", error=exc)
            return
        for request in requests:
            await self._deliver(request)

    async def _deliver(self, request: bytes) -> None:
        try:
            fields: dict[str, Any] = msgpack.unpackb(request, raw=False)
            check = decode(CheckConfig, fields["check"], "check")
            hooks = [decode(HookConfig, h, "hooks") for h in fields["hooks"]]
            assets = [decode(Asset, a, "assets") for a in fields["assets"]]
            entity = None if fields["entity"] is None else decode(Entity, fields["entity"], "entity")
            agent = str(fields["agent"])
        except (ValueError, KeyError, TypeError, ValidationError, msgpack.UnpackException) as exc:
            self.metrics.executions_forwarded.labels("unreadable").inc()
            log.error("queued check execution unreadable; dropped", error=exc)
            return
        if await self.local.execute_on(agent, check, hooks, entity, assets):
            self.metrics.executions_forwarded.labels("delivered").inc()
            return
        self.metrics.executions_forwarded.labels("agent_gone").inc()
        log.warning("queued check execution for an agent no longer connected here; not run",
                    check=check.metadata.name, agent=agent)  # fmt: skip

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await self.sync()
        task_status.started()
        try:
            while True:
                await trio.sleep(self.interval)
                await self.sync()
        finally:
            # a clean stop: its agents are gone at once (if the store fails, the others ignore the
            # agents of a backend without a current beat anyway)
            with trio.CancelScope(shield=True), trio.move_on_after(self.interval), contextlib.suppress(StoreError):
                await self.store.set_connections([])

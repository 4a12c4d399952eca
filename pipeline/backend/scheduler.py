"""The backend's check scheduler: round robin checks and proxy requests, as Sensu Go's schedulerd.

Every other check is scheduled by each agent (so that an agent cut off from the backend keeps
running them). A ``round_robin`` check or one with ``proxy_requests`` needs what only the
backend knows, the connected agents and the entities, so it is scheduled here, one task per
check on the same grid (:mod:`pipeline.core.schedule`) the agents use, and each run is an
execution request to agents (the ``execute`` message of ad hoc execution):

- ``round_robin``: one agent of the subscriptions, the next in turn (:func:`next_agents`); if it
  cannot be reached, the one after it.
- ``proxy_requests``: one execution per entity matching ``entity_attributes``, carrying the
  entity (its tokens, ``proxy_entity_name``); with ``round_robin`` each goes to one agent in
  turn, else to every agent of the subscriptions, as Sensu Go. With ``splay`` the executions
  are spread over ``splay_coverage`` percent of the interval.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import trio

from pipeline.check_tasks import CheckTasks, unschedulable_ends
from pipeline.core.backend_schedule import backend_scheduled, next_agents, splay_step
from pipeline.core.entity_attributes import EntityMatcher, EntityMatchError, compile_entity_attributes
from pipeline.core.schedule import schedule_for
from pipeline.core.subdues import is_subdued
from pipeline.logs import get_logger
from pipeline.metrics import BackendMetrics
from pipeline.model import DEFAULT_NAMESPACE, CheckConfig, Entity
from pipeline.model.asset import Asset
from pipeline.model.check import HookConfig
from pipeline.model.codec import encode

log = get_logger("backend.scheduler")

#: The name the grid's phase is hashed with: the same on every backend and after a restart.
SCHEDULER = "backend"


class Agents(Protocol):
    """What the scheduler needs of the agent transport."""

    def connected_agents(self, namespace: str, subscriptions: list[str]) -> list[str]: ...

    async def execute(
        self,
        check: CheckConfig,
        hooks: list[HookConfig],
        subscriptions: list[str],
        entity: Entity | None = None,
        assets: Sequence[Asset] = (),
    ) -> int: ...

    async def execute_on(
        self,
        agent: str,
        check: CheckConfig,
        hooks: list[HookConfig],
        entity: Entity | None = None,
        assets: Sequence[Asset] = (),
    ) -> bool: ...


#: What an agent needs besides a check to run it: the hooks it names and the assets they name.
ExecutionParts = Callable[[CheckConfig], tuple[list[HookConfig], list[Asset]]]


def _key(check: CheckConfig) -> tuple[str, str]:
    return (check.metadata.namespace or DEFAULT_NAMESPACE, check.metadata.name)


class BackendScheduler:
    """One task per backend-scheduled check; :meth:`update` replaces the set of checks."""

    def __init__(
        self,
        agents: Agents,
        entities: Callable[[str], Awaitable[list[Entity]]],
        parts_for: ExecutionParts,
        metrics: BackendMetrics,
        *,
        wall_clock: Callable[[], float] = time.time,
        owns: Callable[[str, str], bool] = lambda namespace, check: True,
    ) -> None:
        self._agents = agents
        #: whether this backend runs a check's schedule (one backend of those sharing a store does)
        self._owns = owns
        self._entities = entities
        self._parts_for = parts_for
        self._metrics = metrics
        self._wall_clock = wall_clock
        self._tasks: CheckTasks[tuple[str, str]] = CheckTasks()
        #: the agent that ran each check last: the ring goes on from there
        self._last: dict[tuple[str, str], str] = {}
        #: checks whose last run found no agent: said once, not at every run
        self._starved: set[tuple[str, str]] = set()
        self._nursery: trio.Nursery | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    @property
    def scheduled(self) -> list[tuple[str, str]]:
        return sorted(self._tasks.keys())

    def update(self, checks: list[CheckConfig]) -> None:
        """Schedule exactly the backend-scheduled ones of ``checks`` (all namespaces)."""
        assert self._nursery is not None, "BackendScheduler.run must be started first"
        wanted = {_key(c): c for c in checks if backend_scheduled(c) and c.publish and (c.interval > 0 or c.cron)}
        for key in self._tasks.replace(self._nursery, wanted, self._run_schedule):
            check = wanted[key]
            log.info("check scheduled by the backend", namespace=key[0], check=key[1],
                     round_robin=check.round_robin, proxy_requests=check.proxy_requests is not None)  # fmt: skip

    async def _run_schedule(self, check: CheckConfig, scope: trio.CancelScope) -> None:
        namespace, name = _key(check)
        matcher = None
        if check.proxy_requests is not None:
            matcher = compile_entity_attributes(check.proxy_requests.entity_attributes)
        unschedulable = self._metrics.scheduled_skipped.labels("unschedulable").inc
        with scope, unschedulable_ends(f"{namespace}/{name}", unschedulable):
            schedule = schedule_for(SCHEDULER, f"{namespace}/{name}", interval=check.interval, cron=check.cron)
            due = schedule.next_after(self._wall_clock())
            while True:
                await trio.sleep(max(0.0, due - self._wall_clock()))
                following = schedule.next_after(due)
                if not self._owns(namespace, name):  # another backend sharing the store runs it
                    self._metrics.scheduled_skipped.labels("other_backend").inc()
                elif is_subdued(check.subdues, due):  # as Sensu Go's round robin scheduler: no run in a window
                    self._metrics.scheduled_skipped.labels("subdued").inc()
                else:
                    await self.run_once(check, matcher, window=following - due)
                due = schedule.next_after(max(self._wall_clock(), due))

    async def run_once(self, check: CheckConfig, matcher: EntityMatcher | None, *, window: float) -> None:
        """One scheduled run of ``check``; proxy executions spread over ``window`` seconds when splayed."""
        hooks, assets = self._parts_for(check)
        if matcher is None:
            await self._round_robin(check, hooks, assets, None)
            return
        entities = await self._matching(check, matcher)
        if not entities:
            self._metrics.scheduled_skipped.labels("no_entity").inc()
            log.debug("no entity matches the proxy requests", namespace=_key(check)[0], check=check.metadata.name)
            return
        proxy = check.proxy_requests
        step = splay_step(window, proxy.splay_coverage, len(entities)) if proxy is not None and proxy.splay else 0.0
        for i, entity in enumerate(entities):
            if i and step:
                await trio.sleep(step)
            if check.round_robin:
                await self._round_robin(check, hooks, assets, entity)
            else:
                asked = await self._agents.execute(check, hooks, check.subscriptions, entity, assets)
                self._asked(check, asked)

    async def _round_robin(
        self, check: CheckConfig, hooks: list[HookConfig], assets: list[Asset], entity: Entity | None
    ) -> None:
        """Ask the agent whose turn it is; if it cannot be reached, the next, and so on."""
        key = _key(check)
        connected = self._agents.connected_agents(key[0], check.subscriptions)
        for agent in next_agents(connected, self._last.get(key), len(connected)):
            if await self._agents.execute_on(agent, check, hooks, entity, assets):
                self._last[key] = agent
                self._asked(check, 1)
                return
        self._asked(check, 0)

    def _asked(self, check: CheckConfig, asked: int) -> None:
        key = _key(check)
        if asked:
            self._metrics.scheduled_requests.labels(check.metadata.name).inc(asked)
            if key in self._starved:
                self._starved.discard(key)
                log.info("check has agents to run on again", namespace=key[0], check=key[1])
            return
        self._metrics.scheduled_skipped.labels("no_agent").inc()
        if key not in self._starved:
            self._starved.add(key)
            log.warning("no connected agent of the check's subscriptions: execution not run", namespace=key[0],
                        check=key[1], subscriptions=",".join(check.subscriptions))  # fmt: skip

    async def _matching(self, check: CheckConfig, matcher: EntityMatcher) -> list[Entity]:
        """The entities of the check's namespace its ``entity_attributes`` match, by name; an entity
        an expression fails on does not match (Sensu Go skips it), counted and said once a run."""
        matched, failures = [], []
        for entity in await self._entities(_key(check)[0]):
            try:
                if matcher(encode(entity)):
                    matched.append(entity)
            except EntityMatchError as exc:
                failures.append(f"{entity.name}: {exc}")
        if failures:
            self._metrics.scheduled_skipped.labels("entity_error").inc(len(failures))
            log.warning("proxy requests expression failed on entities; they do not match", check=check.metadata.name,
                        namespace=_key(check)[0], entities=len(failures), first=failures[0])  # fmt: skip
        return sorted(matched, key=lambda e: e.name)

"""The ``kubernetes`` source: the events of a Kubernetes cluster, from one agent per cluster.

Every agent with this source contends for one coordination.k8s.io/v1 ``Lease``; the holder lists
the cluster's core/v1 events, then watches from the list's resourceVersion with bookmarks, and
sends each new occurrence as a change event of the object it is about (see
:mod:`pipeline.core.host.kubernetes`). The others stand by and take the lease over once it has
not been renewed for its whole duration. A dropped watch resumes from the last resourceVersion;
``410 Gone`` re-lists, sending only what was not sent; a line that is not JSON or a watch ERROR
is counted, logged and raised, so the agent restarts the source with a backoff (this object,
and so its resume point, survives the restart).

Why core/v1 ``/api/v1/events`` rather than ``events.k8s.io/v1``: it is the same objects (the API
server converts between them), served by every cluster version, what ``kubectl get events``
reads, and both kinds of recorders' events carry the involved object, reason and type there.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import trio
from prometheus_client import CollectorRegistry, Counter, Gauge

from pipeline.agent.sources.base import Source, SourceContext
from pipeline.agent.sources.kubeapi import ClusterConfig, KubeAPI, discover
from pipeline.core.host.kubernetes import Resume, event_of
from pipeline.core.host.lease import LeaseRecord, Observer, lease_body
from pipeline.errors import KubernetesError, ValidationError
from pipeline.logs import get_logger
from pipeline.model import Event

log = get_logger("agent.sources.kubernetes")

#: a watch that breaks this many times in a row without a single line is a failure, not a blip
_QUIET_DISCONNECTS = 3


@dataclass(frozen=True, slots=True)
class LeaseTiming:
    """client-go's defaults: a 15 s lease, renewed well before it runs out, tried every 2 s."""

    duration: int = 15
    renew_every: float = 5.0
    retry_every: float = 2.0
    name: str = "pipeline-agent-kubernetes-events"


@dataclass(slots=True)
class KubernetesMetrics:
    events: Counter
    duplicates: Counter
    errors: Counter
    relists: Counter
    leader: Gauge

    @classmethod
    def on(cls, registry: CollectorRegistry) -> KubernetesMetrics:
        prefix = "pipeline_agent_kubernetes"
        return cls(
            events=Counter(f"{prefix}_events", "Kubernetes events sent as change events", registry=registry),
            duplicates=Counter(
                f"{prefix}_duplicates", "Kubernetes events seen again and not sent twice", registry=registry
            ),
            errors=Counter(
                f"{prefix}_errors",
                "Kubernetes API failures and events that could not be used, by reason",
                ["reason"],
                registry=registry,
            ),
            relists=Counter(f"{prefix}_relists", "Full re-lists after a 410 Gone", registry=registry),
            leader=Gauge(f"{prefix}_leader", "1 while this agent holds the cluster's lease", registry=registry),
        )


class KubernetesSource:
    """See the module's docstring. ``config`` and ``timing`` are for tests and embedding; the
    agent makes it with :func:`make`."""

    name = "kubernetes"

    def __init__(
        self,
        context: SourceContext,
        *,
        config: ClusterConfig | None = None,
        timing: LeaseTiming = LeaseTiming(),
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._context = context
        self._config = config
        self.timing = timing
        self._wall = wall
        #: the lease holder's identity: the agent's name, unique per host
        self.identity = context.entity.metadata.name
        self.metrics = KubernetesMetrics.on(context.registry)
        self.resume: Resume | None = None
        self._observer = Observer()
        self._duplicates_counted = 0
        self._delivered = 0

    async def run(
        self, send: trio.MemorySendChannel[Event], *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        config = self._config or discover(self._context.settings.kubeconfig)
        api = KubeAPI(config)
        try:
            task_status.started()
            while True:
                await self._acquire(api, config)
                try:
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(self._hold, api, config, nursery.cancel_scope)
                        await self._collect(api, send, config)
                except BaseExceptionGroup as group:
                    failure = _sole_failure(group)
                    if failure is group:
                        raise
                    raise failure from None
                finally:
                    self.metrics.leader.set(0)
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(2):
                await api.aclose()

    # -- the lease ----------------------------------------------------------------------------

    async def _acquire(self, api: KubeAPI, config: ClusterConfig) -> None:
        """Stand by until this agent holds the lease."""
        standing_by = False
        while not await self._write_lease(api, config):
            if not standing_by:
                holder = self._observer.record.holder if self._observer.record else ""
                log.info("kubernetes events: standing by", lease=self.timing.name, holder=holder)
                standing_by = True
            await trio.sleep(self.timing.retry_every)
        self.metrics.leader.set(1)
        log.info("kubernetes events: collecting", lease=self.timing.name, identity=self.identity)

    async def _hold(self, api: KubeAPI, config: ClusterConfig, collecting: trio.CancelScope) -> None:
        """Renew the lease; once another agent has it, stop collecting (back to standing by)."""
        while True:
            await trio.sleep(self.timing.renew_every)
            if not await self._write_lease(api, config):
                log.warning("kubernetes events: lease lost", lease=self.timing.name, identity=self.identity)
                collecting.cancel()
                return

    async def _write_lease(self, api: KubeAPI, config: ClusterConfig) -> bool:
        """Create, renew or take over the lease if it is free for this agent; whether it holds it."""
        namespace, name = config.namespace, self.timing.name
        found = await api.get_lease(namespace, name)
        now = trio.current_time()
        previous = self._lease_record(found, api) if found is not None else None
        if previous is not None:
            self._observer.observe(previous, now)
            if not self._observer.free_for(self.identity, now):
                return False
        if self.resume is None or (previous is not None and previous.holder != self.identity):
            # taking over (or starting afresh): resume where the last holder said it was
            self.resume = Resume.after(previous.resume if previous is not None else None)
        body = lease_body(
            name=name,
            namespace=namespace,
            identity=self.identity,
            duration=self.timing.duration,
            wall=self._wall(),
            previous=previous,
            resume=self.resume.resource_version,
        )
        if previous is None:
            written = await api.create_lease(namespace, body)
        else:
            written = await api.replace_lease(namespace, name, body)
        if written is None:
            return False
        self._observer.observe(self._lease_record(written, api), now)
        return True

    def _lease_record(self, obj: dict[str, Any], api: KubeAPI) -> LeaseRecord:
        try:
            return LeaseRecord.of(obj)
        except ValidationError as exc:
            self.metrics.errors.labels("bad_lease").inc()
            raise KubernetesError(api.config.server, "bad_lease", f"the Lease does not read: {exc}") from None

    # -- the events ---------------------------------------------------------------------------

    async def _collect(self, api: KubeAPI, send: trio.MemorySendChannel[Event], config: ClusterConfig) -> None:
        assert self.resume is not None  # set by _write_lease
        if self.resume.resource_version is None:
            await self._list(api, send, config, send_history=False)
        quiet = 0
        while True:
            self._delivered = 0
            try:
                await api.watch_events(
                    self.resume.resource_version or "", functools.partial(self._on_watch, send, config)
                )
                quiet = 0
            except KubernetesError as exc:
                if exc.reason == "gone":
                    self.metrics.relists.inc()
                    log.info("kubernetes events: watch expired, listing again", detail=exc.detail)
                    await self._list(api, send, config, send_history=True)
                    continue
                self.metrics.errors.labels(exc.reason).inc()
                quiet = quiet + 1 if self._delivered == 0 else 1
                if exc.reason != "disconnect" or quiet >= _QUIET_DISCONNECTS:
                    log.error("kubernetes events: watch failed", reason=exc.reason, url=exc.url, detail=exc.detail)
                    raise
                log.warning("kubernetes events: watch dropped, resuming", resource_version=self.resume.resource_version)

    async def _list(
        self, api: KubeAPI, send: trio.MemorySendChannel[Event], config: ClusterConfig, *, send_history: bool
    ) -> None:
        assert self.resume is not None
        items, version = await api.list_events()
        try:
            to_send = self.resume.listed(items, version, send_history=send_history)
        except ValidationError as exc:
            self.metrics.errors.labels("bad_event").inc()
            raise KubernetesError(f"{config.server}/api/v1/events", "bad_event", f"a listed event: {exc}") from None
        self._count_duplicates()
        for obj in to_send:
            await self._send(send, obj, config)

    async def _on_watch(
        self, send: trio.MemorySendChannel[Event], config: ClusterConfig, kind: str, obj: dict[str, Any]
    ) -> None:
        assert self.resume is not None
        self._delivered += 1
        try:
            fresh = self.resume.watched(kind, obj)
        except ValidationError as exc:
            self.metrics.errors.labels("bad_event").inc()
            log.warning("kubernetes events: watch event skipped", type=kind, error=str(exc))
            return
        self._count_duplicates()
        if fresh is not None:
            await self._send(send, fresh, config)

    async def _send(self, send: trio.MemorySendChannel[Event], obj: Any, config: ClusterConfig) -> None:
        namespace = self._context.entity.metadata.namespace or "default"
        try:
            event = event_of(obj, namespace=namespace, now=self._wall(), cluster=config.cluster)
            event.validate()
        except ValidationError as exc:
            self.metrics.errors.labels("bad_event").inc()
            log.warning("kubernetes events: event skipped", error=str(exc))
            return
        await send.send(event)
        self.metrics.events.inc()

    def _count_duplicates(self) -> None:
        assert self.resume is not None
        self.metrics.duplicates.inc(max(0, self.resume.duplicates - self._duplicates_counted))
        self._duplicates_counted = self.resume.duplicates


def _sole_failure(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one KubernetesError a group holds (what the agent's log and metric should name), or
    the group itself when it holds anything else (a cancellation, a bug, several failures)."""
    leaves = list(_leaves(group))
    return leaves[0] if len(leaves) == 1 and isinstance(leaves[0], KubernetesError) else group


def _leaves(group: BaseExceptionGroup[BaseException]) -> Iterator[BaseException]:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from _leaves(exc)
        else:
            yield exc


def make(context: SourceContext) -> Source:
    """The ``kubernetes`` source of an agent (``pipeline agent --source kubernetes``)."""
    return KubernetesSource(context)

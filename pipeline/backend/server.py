"""The backend daemon: store, event processor, handlers, agent transport and HTTP API.

Nurseries nest in the order of shutdown: the store service outermost, then the handlers, then
everything that takes events in (transport, API, event processor, liveness). A stop closes the
intake first, gives the handlers ``handler_drain`` seconds to finish what they hold (what they
do not finish stays in the outbox, for the next start), then closes the store.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio
from starlette.applications import Starlette

from pipeline.agent.system import collect_system
from pipeline.assets.cache import AssetCache, AssetMetrics
from pipeline.backend.api import create_app
from pipeline.backend.api.check_hooks import check_hook_routes
from pipeline.backend.api.deadletters import ReplayResult, dead_letter_routes
from pipeline.backend.api.entities import EntityService, entity_routes
from pipeline.backend.api.event_intake import FastEvents
from pipeline.backend.api.events import EventIntake, event_of_record, event_routes
from pipeline.backend.api.execute import execute_routes
from pipeline.backend.api.health import health_routes
from pipeline.backend.api.kinds import kind_routes
from pipeline.backend.api.namespaces import namespace_routes
from pipeline.backend.api.recent import recent_routes
from pipeline.backend.api.silenced import silenced_routes
from pipeline.backend.api.timeline import timeline_routes
from pipeline.backend.api.writes import Writer
from pipeline.backend.auth import AgentCredentials
from pipeline.backend.auth_http import RequireKey, auth_routes, key_routes, may_post_events
from pipeline.backend.checkstate import open_notices
from pipeline.backend.cluster_agents import ClusterAgents
from pipeline.backend.dashboard import DashboardContext, dashboard_routes
from pipeline.backend.dashboard.changes import Changes
from pipeline.backend.eventd import EventProcessor
from pipeline.backend.follower import ChangeFollower
from pipeline.backend.front_process import FrontMetrics, FrontProcess
from pipeline.backend.handlers import HandlerRunner
from pipeline.backend.journal import IntakeJournal
from pipeline.backend.journal_files import JournalMetrics
from pipeline.backend.keys import ApiKeys, admin_key_file
from pipeline.backend.liveness import Liveness
from pipeline.backend.membership import BackendsChanged, Membership
from pipeline.backend.push_api import push_routes
from pipeline.backend.recent_metrics import RecentMetrics
from pipeline.backend.reload import Reloader, ReloadReport, reload_routes
from pipeline.backend.resource_routes import resource_routes
from pipeline.backend.resources import ResourceService
from pipeline.backend.resume import JobResumer
from pipeline.backend.scheduler import Agents, BackendScheduler
from pipeline.backend.secrets import check_secrets, report_unavailable
from pipeline.backend.sessions import ACCESS_LIFETIME, REFRESH_LIFETIME, Lifetimes, Sessions
from pipeline.backend.silences import Silences
from pipeline.backend.throttle import AuthGuard
from pipeline.backend.traces import PipelineTraces
from pipeline.backend.transport import TransportServer
from pipeline.config import Resources
from pipeline.core.cluster import Heartbeat
from pipeline.data_lock import DataDirLock
from pipeline.errors import HandlerError, StoreError, ValidationError
from pipeline.http import Limits, Server, listen, serve_app
from pipeline.logs import get_logger
from pipeline.metrics import BackendMetrics
from pipeline.model import DEFAULT_NAMESPACE, CheckConfig, Entity
from pipeline.model.asset import Asset
from pipeline.model.check import HookConfig
from pipeline.model.codec import encode
from pipeline.model.deadletter import DeadLetter
from pipeline.process import plugin_environment
from pipeline.store.base import KEYS, RESOURCES, SILENCES
from pipeline.store.choose import store_for
from pipeline.store.service import StoreService
from pipeline.tls import TLSFiles, server_context

log = get_logger("backend")

#: The intake journal's directory, in the data directory.
JOURNAL_DIR = "intake"
#: Seconds a stopping backend waits for the journaled events to be stored (the rest: at the next start).
JOURNAL_DRAIN = 5.0

#: Changes of the live backends waiting for liveness, at most (one a heartbeat at most).
BACKENDS_CHANGED_SIZE = 16


@dataclass(slots=True)
class BackendConfig:
    data_dir: Path
    resources: Resources
    api_addr: tuple[str, int] = ("127.0.0.1", 8080)
    transport_addr: tuple[str, int] = ("127.0.0.1", 8081)
    plugin_dirs: list[Path] = field(default_factory=list)
    name: str = field(default_factory=socket.gethostname)
    agent_credentials: AgentCredentials = field(default_factory=AgentCredentials)
    #: API keys: admin (everything) and ingest (pushing events only)
    admin_keys: list[str] = field(default_factory=list)
    ingest_keys: list[str] = field(default_factory=list)
    #: API keys that may only read (the API's GETs, the dashboard without its buttons)
    viewer_keys: list[str] = field(default_factory=list)
    #: handlers of pushed change events
    change_handlers: list[str] = field(default_factory=list)
    max_body_size: int = 1024 * 1024
    #: users who may get a bearer token from /auth (admin role)
    api_users: list[tuple[str, str]] = field(default_factory=list)
    #: seconds an access token and a refresh token from /auth last (Sensu Go's 5 min and 12 h)
    access_token_expiry: float = ACCESS_LIFETIME
    refresh_token_expiry: float = REFRESH_LIFETIME
    tls: TLSFiles = field(default_factory=TLSFiles)
    #: seconds a stopping backend lets its handlers finish; the rest stays in the outbox
    handler_drain: float = 10.0
    #: where ``resources`` were loaded from: what a reload (SIGHUP, ``pipeline reload``) reads again
    config_dir: Path | None = None
    #: the store (``--store``): "" for ``<data_dir>/events.db``, a SQLite path or a PostgreSQL URL
    store: str = ""


@dataclass(slots=True, frozen=True)
class BackendAddresses:
    api: tuple[str, int]
    transport: tuple[str, int]

    @property
    def api_url(self) -> str:
        return f"http://{self.api[0]}:{self.api[1]}"


class Backend:
    def __init__(
        self,
        config: BackendConfig,
        metrics: BackendMetrics | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics or BackendMetrics.create()
        config.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_lock = DataDirLock(config.data_dir, "backend")
        self.store = StoreService(store_for(config.store, config.data_dir, config.name), self.metrics.store)
        self.resource_service = ResourceService(
            config.resources,
            self.store,
            check=self._check_resources,
            changed=self._resources_changed,
            skipped=self._resource_skipped,
            metrics=self.metrics,
        )
        self.transport: TransportServer | None = None
        #: the agents checks are executed on: this backend's, or every backend's on a shared store
        self.agents: Agents | None = None
        env = plugin_environment(config.plugin_dirs)
        env["PIPELINE_DATA_DIR"] = str(config.data_dir.resolve())
        self._host: dict[str, Any] | None = None
        assets = AssetCache(config.data_dir / "assets", self._host_entity,
                            AssetMetrics.create(self.metrics.registry, "pipeline_backend"))  # fmt: skip
        #: what the handlers did with the last events, and the recent points of each metric series
        self.traces = PipelineTraces(self.metrics.registry)
        self.recent_metrics = RecentMetrics(self.metrics.registry)
        self.handlers = HandlerRunner(lambda: self.resources, self.metrics, env, dead_letters=self._keep_dead_letter,
                                      completions=self.store.completions, asset_cache=assets,
                                      traces=self.traces)  # fmt: skip
        sessions = Sessions(Lifetimes(config.access_token_expiry, config.refresh_token_expiry))
        self.keys = ApiKeys.of(config.admin_keys, config.ingest_keys, config.api_users, sessions, config.viewer_keys)
        self.admin_key = admin_key_file(config.data_dir, self.keys, created=not (config.admin_keys or config.api_users))
        self.silences = Silences(self.store, self.metrics, config.resources.silences)
        stored_notices, notices = open_notices()  # what eventd stored or forgot, for liveness
        self.metrics.queues.watch("liveness_notices", stored_notices)  # type: ignore[arg-type]
        self.metrics.queues.watch("store_completions", self.store.completions)  # type: ignore[arg-type]
        self.eventd = EventProcessor(self.store, self.metrics, self.handlers.inbox, notices=stored_notices,
                                     silences=self.silences, change_handlers=config.change_handlers,
                                     recent_metrics=self.recent_metrics)  # fmt: skip
        #: the events API's submissions, answered once journaled; none on a shared store, whose other
        #: backends must not depend on this one's disk to see a result it answered
        #: the API's front process, when there is one (:meth:`_serve_http`)
        self.front: FrontProcess | None = None
        self.journal = None if self.store.shared else IntakeJournal(
            config.data_dir / JOURNAL_DIR, self.eventd.offer, JournalMetrics.create(self.metrics.registry),
            durable=getattr(self.store.store, "durable", False), decode=event_of_record)  # fmt: skip
        to_liveness, backends_changed = trio.open_memory_channel[BackendsChanged](BACKENDS_CHANGED_SIZE)
        #: this backend among those sharing the store: its heartbeat, and who owns which entity
        self.membership = Membership(self.store, Heartbeat(config.name, 0.0), self.metrics, to_liveness)
        self.resumer = JobResumer(self.store, self.handlers.inbox, self.metrics)
        self.follower = ChangeFollower(self.store, {RESOURCES: self.resource_service.follow_store,
                                                    SILENCES: self.silences.follow_store, KEYS: self._read_keys},
                                       self.metrics)  # fmt: skip
        self.liveness = Liveness(self.eventd, self.store, self.metrics, notices, membership=self.membership,
                                 backends_changed=backends_changed)  # fmt: skip
        #: what changed, for the dashboard's live stream (publishing never waits)
        self.changes = Changes(self.metrics.dashboard_stream_dropped)
        self.eventd.watchers.append(lambda keys: self.changes.publish("checks"))
        self.silences.watchers.append(lambda: self.changes.publish("silences"))
        self.reloader = Reloader(config.config_dir, self.resource_service, self.silences, self.metrics)
        self._ssl = server_context(config.tls) if config.tls.any else None
        self._transport().check_exposure()  # refuse a bad setup before anything starts
        self.scheduler: BackendScheduler | None = None
        self._stopping = trio.Event()
        self._stopped = trio.Event()
        #: the HTTP API's app once it serves (its routes are what the API answers)
        self.api_app: Starlette | None = None
        self._ready = False  # /ready: state loaded and every port open, not stopping

    @property
    def resources(self) -> Resources:
        return self.resource_service.current

    def _check_resources(self, resources: Resources) -> None:
        try:
            self.handlers.prepare(resources)
        except HandlerError as exc:
            raise ValidationError("spec.plugin", str(exc)) from None

    def _resource_skipped(self, kind: str) -> None:
        self.metrics.resources_skipped.labels(kind).inc()

    async def _resources_changed(self, resources: Resources) -> None:
        self.handlers.refresh(resources)
        if self.scheduler is not None:
            self.scheduler.update(resources.checks)
        if self.transport is not None:
            await self.transport.broadcast_checks()

    async def reload(self) -> ReloadReport:
        """Read the configuration directory again and apply it if it is valid (SIGHUP, the API)."""
        return await self.reloader.reload()

    async def execute_check(self, namespace: str, name: str, subscriptions: list[str] | None) -> int | None:
        """Run a check once now on the agents of ``subscriptions`` (the check's own by default):
        Sensu's ad hoc execution. None when there is no such check; else how many agents were asked."""
        check: CheckConfig | None = self.resource_service.get("CheckConfig", namespace, name)
        if check is None or self.agents is None:
            return None
        hooks = self.resources.hooks_for([check])
        assets = self.resources.assets_needed([check], hooks)
        asked = await self.agents.execute(
            check, hooks, check.subscriptions if subscriptions is None else subscriptions, assets=assets
        )
        log.info("check execution requested", check=name, namespace=namespace, agents=asked)
        return asked

    def checks_for(
        self, subscriptions: list[str], namespace: str
    ) -> tuple[list[CheckConfig], list[HookConfig], list[Asset]]:
        """The checks an agent with these subscriptions runs, the hooks they name, and the assets
        both name (Sensu Go sends the assets with the check request)."""
        checks = self.resources.checks_for(subscriptions, namespace)
        hooks = self.resources.hooks_for(checks)
        return checks, hooks, self.resources.assets_needed(checks, hooks)

    async def run(self, *, task_status: trio.TaskStatus[BackendAddresses] = trio.TASK_STATUS_IGNORED) -> None:
        self.data_lock.acquire()  # one backend to a data directory: its journal is not shareable
        try:
            await self._run(task_status)
        finally:
            self.data_lock.release()

    async def _run(self, task_status: trio.TaskStatus[BackendAddresses]) -> None:
        await self.store.open()
        log.info("store opened", store=self.store.store.where, shared=self.store.shared, backend=self.config.name)
        try:
            await self.follower.start_from()
            await self._read_keys()
            await self.resource_service.load()
            self.handlers.refresh(self.resources)
            await self.eventd.load_state()
            await self.silences.load()
            self.liveness.load(self.eventd.checks)
            unfinished = await self.store.last_job()  # jobs up to here are a previous run's
            async with trio.open_nursery() as storage:
                await storage.start(self.store.run)
                async with trio.open_nursery() as handling:
                    await handling.start(self.handlers.run)
                    mine = self.config.name if self.store.shared else None  # the others': adopted
                    resumed = trio.Event()
                    handling.start_soon(self._resume, unfinished, mine, resumed)
                    await self._take_events(task_status)
                    await self._drain_handlers(resumed)
                    handling.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                await self.store.close()
            log.info("backend stopped")
            self._stopped.set()

    async def _read_keys(self) -> None:
        self.keys.stored = {k.digest: k for k in await self.store.list_api_keys()}

    async def _take_events(self, task_status: trio.TaskStatus[BackendAddresses]) -> None:
        """Run everything that takes events in, until :meth:`stop`."""
        async with trio.open_nursery() as nursery:
            await nursery.start(self.membership.run)
            if self.store.shared:  # what other backends change through their API, the work of dead ones
                await nursery.start(self.follower.run)
                await nursery.start(self.resumer.run_adoption)
            await nursery.start(self.eventd.run)
            if self.journal is not None:  # what the last run journaled, stored before anything new
                await self.journal.replay()
                await nursery.start(self.journal.run)
            await nursery.start(self.liveness.run)
            self.transport = self._transport()
            self.transport.agent_entities.update(await self._agent_entities())
            transport_addr = await nursery.start(self.transport.run)
            self.agents = self.transport
            if self.store.shared:  # agents connected to any backend; each check scheduled by its owner
                cluster = ClusterAgents(self.store, self.transport, self.config.name, self.metrics)
                await nursery.start(cluster.run)
                self.agents = cluster
            self.scheduler = BackendScheduler(self.agents, self.store.list_entities, self._execution_parts,
                                              self.metrics, owns=self.membership.owns_check)  # fmt: skip
            await nursery.start(self.scheduler.run)
            self.scheduler.update(self.resources.checks)
            api_addr = await nursery.start(self._serve_http)
            addresses = BackendAddresses(api=api_addr, transport=transport_addr)
            self.membership.me = Heartbeat(self.config.name, 0.0, addresses.api_url,
                                           f"{transport_addr[0]}:{transport_addr[1]}")  # fmt: skip
            log.info("backend ready", api=addresses.api_url, transport=f"{transport_addr[0]}:{transport_addr[1]}")
            self._ready = True
            task_status.started(addresses)
            await self._stopping.wait()
            if self.journal is not None:  # what was answered 201 is stored before the stop, if it can be
                with trio.move_on_after(JOURNAL_DRAIN):
                    if self.front is not None:  # the front's too (what it answers from now on: the next start's)
                        await self.front.catch_up()
                    await self.journal.barrier()
            nursery.cancel_scope.cancel()
        if self.journal is not None:
            self.journal.close()

    async def stop(self) -> None:
        """Stop taking events, let the handlers finish what they hold (for ``handler_drain``
        seconds), and close the store; what the handlers did not finish stays in the outbox."""
        self._ready = False
        self._stopping.set()
        await self._stopped.wait()

    async def _resume(self, last: int, backend: str | None, done: trio.Event) -> None:
        try:
            await self.resumer.resume(last, backend)
        finally:
            done.set()

    async def _drain_handlers(self, resumed: trio.Event) -> None:
        """Let the handlers finish what they hold, the previous run's jobs included (a stop right
        after a start would otherwise find them not yet handed over, and leave them)."""
        with trio.move_on_after(self.config.handler_drain) as scope:
            await resumed.wait()
            await self.handlers.drain()
        if scope.cancelled_caught:
            log.warning("stopping with handler work unfinished; it stays in the outbox for the next start",
                        drain_seconds=self.config.handler_drain)  # fmt: skip

    async def _agent_entities(self) -> set[tuple[str, str]]:
        """Every entity registered with class ``agent``: no other agent may write about them."""
        entities = await self.store.list_entities()
        return {(e.metadata.namespace or DEFAULT_NAMESPACE, e.name) for e in entities if e.entity_class == "agent"}

    def _entity_saved(self, entity: Entity) -> None:
        self.eventd.entities.saved(entity)  # the events about it carry it from now on
        if self.transport is not None:
            key = (entity.metadata.namespace or DEFAULT_NAMESPACE, entity.name)
            if entity.entity_class == "agent":
                self.transport.agent_entities.add(key)
            else:  # saved as a proxy again: other agents may write about it
                self.transport.agent_entities.discard(key)

    async def _deregister(self, namespace: str, name: str) -> None:
        """Deregister an entity through the API; an agent's name is free again afterwards."""
        await self.liveness.deregister(namespace, name)
        if self.transport is not None:
            self.transport.agent_entities.discard((namespace, name))

    def _host_entity(self) -> dict[str, Any]:
        """This host as an asset's filters see it (which build of a handler's asset applies here)."""
        if self._host is None:  # read once, when a handler first needs an asset
            self._host = {"metadata": {"name": self.config.name}, "entity_class": "backend",
                          "system": encode(collect_system())}  # fmt: skip
        return self._host

    def _execution_parts(self, check: CheckConfig) -> tuple[list[HookConfig], list[Asset]]:
        """What an agent needs besides the check to run it: the hooks it names, the assets both name."""
        hooks = self.resources.hooks_for([check])
        return hooks, self.resources.assets_needed([check], hooks)

    def namespace_exists(self, namespace: str) -> bool:
        return self.resource_service.current.namespace_exists(namespace)

    async def _namespace_occupants(self, namespace: str) -> list[str]:
        """What lives in ``namespace`` besides the configured kinds, as words for a refusal."""
        counts = [(len(await self.store.list_entities(namespace)), "entities"),
                  (len(await self.store.list_events(namespace, None)), "events"),
                  (len(self.silences.list(namespace)), "silences")]  # fmt: skip
        return [f"{count} {what}" for count, what in counts if count]

    async def delete_event(self, namespace: str, entity: str, check: str) -> bool:
        """Delete a check's latest event and forget its state (the event log keeps its past)."""
        return await self.eventd.delete_event(namespace, entity, check)

    async def _keep_dead_letter(self, letter: DeadLetter) -> None:
        try:
            await self.store.put_dead_letter(letter)
        except StoreError as exc:
            log.error("dead letter lost: the store failed", letter=letter.id, event_id=letter.event.id, error=exc)

    async def replay_dead_letter(self, letter_id: str) -> ReplayResult | None:
        """Hand a dead letter to its handler again; on success it is deleted. None if unknown."""
        letter = await self.store.get_dead_letter(letter_id)
        if letter is None:
            return None
        error = await self.handlers.replay(letter)
        if error is None:
            await self.store.delete_dead_letter(letter_id)
            log.info("dead letter replayed", letter=letter_id, handler=letter.handler, event_id=letter.event.id)
            return ReplayResult(letter_id, True, "")
        letter.error = error
        letter.attempts += 1
        await self.store.put_dead_letter(letter)
        log.warning("dead letter replay failed", letter=letter_id, handler=letter.handler, error=error)
        return ReplayResult(letter_id, False, error)

    def _transport(self) -> TransportServer:
        return TransportServer(
            *self.config.transport_addr,
            self.eventd,
            self.checks_for,
            self.metrics,
            liveness=self.liveness,
            credentials=self.config.agent_credentials,
            ssl_context=self._ssl,
            name=self.config.name,
            namespace_exists=self.namespace_exists,
            secrets_for=self._check_secrets,
        )

    def _check_secrets(self, checks: list[CheckConfig], tls: bool) -> dict[str, Any]:
        report = report_unavailable(self.metrics.check_secrets_unavailable.inc)
        return check_secrets(checks, self.resources, tls=tls, on_unavailable=report)

    async def _serve_http(self, *, task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED) -> None:
        entities = EntityService(last_seen=self.eventd.entities.last_seen, deregister=self._deregister,
                                 saved=self._entity_saved)  # fmt: skip
        guard = AuthGuard(self.metrics)  # one throttle for logins, API keys and ingest keys alike
        push = push_routes(self.eventd.offer, self.metrics, lambda key: self.keys.role_of_key(key) is not None,
                           guard, change_handlers=self.config.change_handlers)  # fmt: skip
        writer = Writer(self.metrics, self.namespace_exists)
        self.dashboard = DashboardContext(self.store, lambda: self.resources, self.keys, self.metrics, self.silences,
                                          self.eventd.offer, self.delete_event, self.execute_check,
                                          self.replay_dead_letter, changes=self.changes, guard=guard)  # fmt: skip
        self.dashboard.origins = self.resource_service.origins
        self.dashboard.config_dir = self.config.config_dir
        self.dashboard.traces = self.traces
        self.dashboard.recent_metrics = self.recent_metrics
        self.dashboard.last_seen = self.eventd.entities.last_seen
        self.dashboard.latest_checks = lambda: self.eventd.checks
        intake = EventIntake(self.eventd.offer, self.metrics, journal=self.journal,
                             namespace_exists=self.namespace_exists)  # fmt: skip
        app = create_app(
            health_routes(self.metrics, self.store, self.config.name, lambda: self._ready),
            auth_routes(self.keys, guard),
            namespace_routes(self.resource_service, self._namespace_occupants),
            event_routes(self.store, self.eventd.offer, self.metrics, self.delete_event, intake=intake),
            entity_routes(self.store, entities, writer),
            timeline_routes(self.store),
            dead_letter_routes(self.store, self.replay_dead_letter),
            silenced_routes(self.silences, writer),
            execute_routes(self.execute_check),
            check_hook_routes(self.resource_service),
            key_routes(self.keys, self.store),
            reload_routes(self.reload),
            dashboard_routes(self.dashboard),
            recent_routes(self.traces, self.recent_metrics, self.store),
            resource_routes(self.resource_service, self.silences),
            kind_routes(self.resource_service, writer),  # after every fixed path: {kind} would match them
            push,  # last: the push formats' paths are catch-alls of two segments
            refused=lambda path: self.metrics.api_unknown_parameters.labels(path).inc(),
        )
        self.api_app = app
        limits = Limits(max_body=self.config.max_body_size)
        if self.journal is None or self.journal.durable:  # a shared store: stored before the answer; a
            # durable one: the front's journal is not synced (its records are answered once written)
            await serve_app(RequireKey(FastEvents(app, intake, self.journal), self.keys, self.metrics, guard),
                            self.config.api_addr, limits=limits, metrics=self.metrics.http,
                            task_status=task_status)  # fmt: skip
            return
        self.front = front = FrontProcess(self.journal, may_post_events(self.keys, guard, self.namespace_exists),
                                          self.metrics, FrontMetrics.create(self.metrics.registry), limits,
                                          self.data_lock)  # fmt: skip
        gated = RequireKey(FastEvents(app, intake, self.journal, front.catch_up), self.keys, self.metrics, guard)
        async with await listen(self.config.api_addr) as listener:
            server = Server(gated, listener.socket.getsockname()[:2], limits, self.metrics.http)
            await front.serve(server, listener, task_status)

"""The agent daemon: connects to the backend, runs the checks it is given, sends their events.

Events go into one bounded outbound channel (every source of events on the agent sends
there), then into the on-disk spool; the connection task sends them in batches and keeps a
window of unacknowledged events, which it sends again after a reconnect. Beside them on the
connection: keepalives (never spooled: a late keepalive means nothing) and heartbeats, so
that a half-open connection is noticed within ``heartbeat_timeout`` seconds.
"""

from __future__ import annotations

import dataclasses
import functools
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import trio

from pipeline import __version__
from pipeline.agent.api import AgentApi, create_agent_api
from pipeline.agent.check_reports import CheckReports
from pipeline.agent.client_socket import ClientSocketServer
from pipeline.agent.delivery import Delivery
from pipeline.agent.executor import CheckExecutor
from pipeline.agent.metrics import AgentMetrics
from pipeline.agent.reconfigure import ENTITY_FIELDS, RELOADABLE, ConfigChanges, config_changes
from pipeline.agent.remembered import CHECKS_FILE, remember_checks, remembered_checks
from pipeline.agent.scheduler import Scheduler
from pipeline.agent.settings import AgentConfig, agent_entity
from pipeline.agent.sources import Outlet, SourceContext, SourceRunner, make_sources
from pipeline.agent.sources.builtin import ListenerSource, SchedulerSource
from pipeline.agent.spool import Spool
from pipeline.agent.statsd import StatsdServer
from pipeline.assets import AssetCache, AssetMetrics
from pipeline.assets.received import received_assets
from pipeline.core.host_events import host_event
from pipeline.core.keepalive import (
    keepalive_check,
)
from pipeline.errors import EventTooLarge, ProtocolError, SpoolUnavailable, StoreError, ValidationError, first_error
from pipeline.http import serve_app
from pipeline.logs import get_logger
from pipeline.model import CheckConfig, Entity, Event, ObjectMeta, new_event_id
from pipeline.model.check import HookConfig
from pipeline.model.codec import decode, encode
from pipeline.model.event import forget_packed, know_packed, packed_entity
from pipeline.process import plugin_environment
from pipeline.tls import client_context
from pipeline.wire import messages as wire
from pipeline.wire.limits import MAX_EVENT_BYTES
from pipeline.wire.stream import MessageStream

log = get_logger("agent")

#: Events produced and not yet handed to the connection.
OUTBOUND_BUFFER = 1024
RETRY_MIN, RETRY_MAX = 0.5, 30.0
#: A connection resets the backoff if an event was acknowledged on it or it lasted this long: a
#: backend closing it after each failed store write must not get a reconnect storm.
WORKED_SECONDS = RETRY_MAX


#: The runtime asset cache, under the data directory (Sensu Go's ``cache-dir``).
ASSETS_DIR = "assets"


@dataclass(slots=True, frozen=True)
class AgentAddresses:
    api: tuple[str, int] | None
    statsd: tuple[str, int] | None = None
    socket: tuple[str, int] | None = None


class Agent:
    def __init__(self, config: AgentConfig, metrics: AgentMetrics | None = None) -> None:
        config.validate()
        self.config = config
        self._tls = client_context(config.tls) if config.tls.any else None
        self._conn: MessageStream | None = None
        self.metrics = metrics or AgentMetrics.create()
        self.entity = agent_entity(config)
        reports = CheckReports(self.metrics)
        self.executor = CheckExecutor(
            self.entity,
            plugin_environment(config.plugin_dirs),
            on_extraction_errors=reports.extraction_errors,
            on_fit=reports.fit,
            asset_cache=AssetCache(
                config.data_dir / ASSETS_DIR if config.data_dir else None,
                lambda: encode(self.entity),
                AssetMetrics.create(self.metrics.registry, "pipeline_agent"),
            ),
        )
        self._outbound_send, self._outbound = trio.open_memory_channel[Event](OUTBOUND_BUFFER)
        self.metrics.queues.watch("agent_outbound", self._outbound_send)  # type: ignore[arg-type]
        spool_path = config.data_dir / "spool.db" if config.data_dir else Path(":memory:")
        self.spool = Spool(spool_path, config.spool_max_bytes)
        self.delivery = Delivery(self.spool, self._outbound, self.metrics)
        scheduled = Outlet(self.delivery.spooled_event)
        self.scheduler = Scheduler(config.name, self._run_check, scheduled.send, on_skip=reports.skipped,
                                   on_subdued=reports.subdued, on_unschedulable=reports.unschedulable)  # fmt: skip
        self._scheduler_source = SchedulerSource(self.scheduler, scheduled)
        #: the host sources switched on (``--source``); raises UnknownSource for a name none has
        self.sources = make_sources(
            config.sources, SourceContext(self.entity, config.source_settings, self.metrics.registry)
        )
        self.metrics.spool.watch(lambda: self.spool.count, lambda: self.spool.bytes)
        self.connected = trio.Event()
        #: the local HTTP API's app once it serves (its routes are what the API answers)
        self.api_app: AgentApi | None = None
        self._entity_changed()  # its bytes packed once for all its events
        #: the current connection's tasks; cancelled to connect again with a changed entity
        self._connection_scope: trio.CancelScope | None = None
        self._acked = False  # the backend acknowledged (or rejected) an event on this connection

    def reload(self, new: AgentConfig) -> ConfigChanges:
        """Take on the settings of ``new`` that can change at run time (raises ValueError when they
        contradict each other; nothing is applied then). A changed entity reaches the backend in
        a new handshake, so the agent connects again; the spool resends what was not acknowledged."""
        changes = config_changes(self.config, new)
        candidate = dataclasses.replace(self.config, **{name: getattr(new, name) for name in changes.reloadable})
        candidate.validate()
        self.config = candidate
        if ENTITY_FIELDS & set(changes.reloadable):
            fresh = agent_entity(candidate)
            entity = self.entity  # changed in place: the executor, StatsD and the socket hold it
            entity.subscriptions, entity.redact = fresh.subscriptions, fresh.redact
            entity.metadata.labels, entity.metadata.annotations = fresh.metadata.labels, fresh.metadata.annotations
            entity.keepalive_handlers, entity.deregister = fresh.keepalive_handlers, fresh.deregister
            entity.deregistration = fresh.deregistration
            self._entity_changed()
            if self._connection_scope is not None:
                log.info("connecting again to send the changed entity", agent=self.config.name)
                self._connection_scope.cancel()
        applied = ",".join(RELOADABLE[name] for name in changes.reloadable)
        log.info("configuration reloaded", applied=applied or "nothing changed")
        for flag in changes.needs_restart:
            log.warning("setting changed but needs a restart: not applied", setting=flag)
        return changes

    async def submit(self, event: Event) -> None:
        """Queue an event for the backend (waits while the outbound queue is full). The agent's own
        events (started, stopped) come this way; every other producer is a source."""
        await self._outbound_send.send(event)

    async def _queue_local(self, event: Event) -> None:
        """:meth:`submit` for a local program's event, whose submitter waits for the spool next (that
        wait is its checkpoint): queued at once when the queue has room, without the scheduler round
        trio's ``send`` takes even then (one task switch of about four a result)."""
        try:
            self._outbound_send.send_nowait(event)
        except trio.WouldBlock:
            await self._outbound_send.send(event)

    async def submit_durably(self, event: Event) -> None:
        """Queue an event and return once it is in the on-disk spool."""
        spooled = self.delivery.spooled_event(event.id)
        await self.submit(event)
        await spooled.wait()

    async def _submit_local(self, outlet: Outlet, source: str, event: Event) -> None:
        """Spool an event a local program sent (``source``: api, socket) through that source's
        channel, returning once it is on disk (the client is answered then), refusing one over the
        maximum event size with :class:`EventTooLarge`, and one the spool does not take within
        :data:`~pipeline.agent.delivery.SPOOL_WAIT` with :class:`SpoolUnavailable` (not spooled)."""
        packed = event.to_msgpack()
        size = len(packed)
        if size > MAX_EVENT_BYTES:
            self.metrics.events_too_large.labels(source, "refused").inc()
            log.warning("event refused: too large", source=source, event_id=event.id, check=event.check_name,
                        size=size, limit=MAX_EVENT_BYTES)  # fmt: skip
            raise EventTooLarge(size, MAX_EVENT_BYTES)
        try:
            await self.delivery.spool_within(event, packed, outlet.send)
        except SpoolUnavailable as exc:
            log.error("event refused: not spooled in time", source=source, event_id=event.id,
                      check=event.check_name, seconds=exc.seconds)  # fmt: skip
            raise

    def _entity_changed(self) -> None:
        """The agent's own entity (made, or changed in place): its bytes packed once for all its
        events from here on (:func:`know_packed`: ``Event.to_msgpack`` splices them in)."""
        know_packed(self.entity, packed_entity(self.entity))

    async def run(self, *, task_status: trio.TaskStatus[AgentAddresses] = trio.TASK_STATUS_IGNORED) -> None:
        log.info("agent starting", agent=self.config.name, subscriptions=",".join(self.entity.subscriptions))
        await trio.to_thread.run_sync(self.spool.open)
        self.metrics.spool_damaged.inc(self.spool.damaged_at_open)
        try:
            await self._run_tasks(task_status)
        finally:
            forget_packed(self.entity)
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(self.spool.close)

    def lifecycle_event(self, what: str) -> Event:
        """``agent_started`` / ``agent_stopped``: a change event of the agent's own entity, as a
        host source's are (on the timeline, not among the checks of ``event list``)."""
        output = f"{what} pipeline-agent {__version__} / on {self.entity.system.hostname}"
        event = host_event(self.entity, name=what, output=output, status=0, timestamp=int(time.time()))
        assert event.check is not None
        event.check.processed_by = self.config.name
        return event

    async def stop(self) -> None:
        """Say ``agent_stopped`` and wait for the backend's ack, then deregister if configured to
        (the caller bounds the wait)."""
        event = self.lifecycle_event("agent_stopped")
        acknowledged = self.delivery.acknowledged_event(event.id)
        await self.submit(event)
        log.info("agent stopping", agent=self.config.name)
        await acknowledged.wait()
        if self.config.deregister:
            await self._deregister()

    async def _deregister(self) -> None:
        request_id = new_event_id()
        deregistered = self.delivery.acknowledged_event(request_id)
        while True:
            await self.connected.wait()
            conn = self._conn
            if conn is None:
                continue
            try:
                await conn.send(wire.Deregister(request_id))
                break
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                await trio.sleep(0.1)  # until the connection task notices and reconnects
        await deregistered.wait()
        log.info("agent deregistered", agent=self.config.name)

    def keepalive_event(self) -> Event:
        now = time.time()
        namespace = self.entity.metadata.namespace
        check = keepalive_check(self.config.keepalive_interval, self.config.keepalive_warning_timeout,
                                self.config.keepalive_critical_timeout, namespace, now)  # fmt: skip
        check.processed_by = self.config.name
        self.entity.last_seen = int(now)
        self._entity_changed()
        return Event(timestamp=int(now), entity=self.entity, check=check, metadata=ObjectMeta(namespace=namespace),
                     id=new_event_id())  # fmt: skip

    async def _run_tasks(self, task_status: trio.TaskStatus[AgentAddresses]) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.delivery.run_spooler)
            await self.submit(self.lifecycle_event("agent_started"))
            runner = SourceRunner(self.submit, self.metrics)
            # The agent's own producers are required: one that cannot start (a port in use) stops
            # the agent at once, as a wrong flag should; later failures are restarted like any.
            await nursery.start(functools.partial(runner.run, self._scheduler_source, required=True))
            await self._schedule_remembered_checks()
            listeners = self._listener_sources()
            for listener in listeners.values():
                await nursery.start(functools.partial(runner.run, listener, required=True))
            if "api" in listeners:
                api = listeners["api"].address
                assert api is not None
                log.info("agent API listening", address=f"{api[0]}:{api[1]}")
            for source in self.sources:
                await nursery.start(runner.run, source)
            task_status.started(AgentAddresses(*(listeners[k].address if k in listeners else None
                                                 for k in ("api", "statsd", "socket"))))  # fmt: skip
            await self._connect_forever()

    def _listener_sources(self) -> dict[str, ListenerSource]:
        """The local API, StatsD and the client socket, those switched on, by name."""
        listeners = {}
        if self.config.api_addr is not None:
            outlet = Outlet(
                self.delivery.spooled_event, (self._queue_local, self.metrics.source_events.labels("api").inc)
            )
            app = create_agent_api(
                self.metrics.registry,
                lambda: self.connected.is_set(),
                functools.partial(self._submit_local, outlet, "api"),
                self.entity,
                set_aside=self.delivery.list_set_aside,
                unknown_parameters=self.metrics.api_unknown_parameters,
            )
            self.api_app = app
            serve = functools.partial(serve_app, app, self.config.api_addr, metrics=self.metrics.http)
            listeners["api"] = ListenerSource("api", serve, outlet)
        if self.config.statsd is not None:
            outlet = Outlet(self.delivery.spooled_event)
            server = StatsdServer(self.config.statsd, self.entity, outlet.send, self.metrics.registry)
            listeners["statsd"] = ListenerSource("statsd", server.run, outlet)
        if self.config.socket_addr is not None:
            outlet = Outlet(
                self.delivery.spooled_event, (self._queue_local, self.metrics.source_events.labels("socket").inc)
            )
            submit = functools.partial(self._submit_local, outlet, "socket")
            sockets = ClientSocketServer(self.config.socket_addr, self.entity, submit, self.metrics)
            listeners["socket"] = ListenerSource("socket", sockets.run, outlet)
        return listeners

    async def _run_check(self, config: CheckConfig, issued: int, proxy: Entity | None = None) -> Event:
        name = config.metadata.name
        try:
            event = await self.executor.execute(config, issued, proxy)
        except Exception as exc:  # a bug building one result must not stop every check of the agent
            log.exception("check result could not be built", check=name)
            event = self.executor.failure(config, issued, f"the agent could not build this result: {exc}")
        assert event.check is not None
        self.metrics.checks_executed.labels(name, str(event.check.status)).inc()
        self.metrics.check_duration.labels(name).observe(event.check.duration)
        log.info("check executed", check=name, status=event.check.status, duration=f"{event.check.duration:.3f}")
        return event

    async def _connect_forever(self) -> None:
        delay = RETRY_MIN
        attempt = 0
        while True:
            host, port = self.config.backend_addrs[attempt % len(self.config.backend_addrs)]
            attempt, backend = attempt + 1, f"{host}:{port}"
            try:
                stream: trio.abc.Stream = await trio.open_tcp_stream(host, port)
            except OSError as exc:
                self.metrics.connection_failures.inc()
                log.warning("backend unreachable", backend=backend, error=exc, retry_in=f"{delay:.1f}")
            else:
                if self._tls is not None:
                    stream = trio.SSLStream(stream, self._tls, server_hostname=host)
                if worked := await self._serve_connection(MessageStream(stream, backend)):
                    delay = RETRY_MIN
                (log.info if worked else log.warning)("backend connection ended", backend=backend, worked=worked,
                                                      retry_in=f"{delay:.1f}")  # fmt: skip
            await trio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, RETRY_MAX)

    async def _serve_connection(self, conn: MessageStream) -> bool:
        """Serve one connection until it ends; True if it worked: the handshake succeeded, and the
        backend acknowledged an event on it or it lasted :data:`WORKED_SECONDS`."""
        welcomed, since = False, trio.current_time()
        self._acked = False
        try:
            with trio.fail_after(self.config.heartbeat_timeout):
                await self._handshake(conn)
            welcomed, since = True, trio.current_time()
            self._conn = conn
            self.metrics.connected.set(1)
            self.connected.set()
            async with trio.open_nursery() as nursery:
                self._connection_scope = nursery.cancel_scope
                nursery.start_soon(self.delivery.send_loop, conn)
                nursery.start_soon(self._send_keepalives, conn)
                nursery.start_soon(self._send_heartbeats, conn)
                await self._receive_loop(conn)
                nursery.cancel_scope.cancel()
        # except*: the connection's tasks run in a nursery, which raises exception groups
        except* trio.TooSlowError:
            self.metrics.connection_failures.inc()
            log.warning("backend silent: dropping the connection", backend=conn.peer,
                        timeout=self.config.heartbeat_timeout)  # fmt: skip
        except* (OSError, trio.BrokenResourceError, trio.ClosedResourceError, ProtocolError) as group:
            self.metrics.connection_failures.inc()
            log.warning("backend connection lost", backend=conn.peer, error=first_error(group))
        except* StoreError as group:  # the spool could not be read (a failing disk): again on the next connection
            self.metrics.connection_failures.inc()
            log.error("spool not read: connection dropped", backend=conn.peer, error=first_error(group))
        finally:
            self._conn = None
            self._connection_scope = None
            self.metrics.connected.set(0)
            self.connected = trio.Event()
            with trio.CancelScope(shield=True):
                with trio.move_on_after(1):  # a TLS close_notify to a dead peer must not hang us
                    await conn.aclose()
        return welcomed and (self._acked or trio.current_time() - since >= WORKED_SECONDS)

    async def _send_keepalives(self, conn: MessageStream) -> None:
        while True:
            await conn.send(wire.Keepalive(self.keepalive_event().to_msgpack()))
            self.metrics.keepalives_sent.inc()
            await trio.sleep(self.config.keepalive_interval)

    async def _send_heartbeats(self, conn: MessageStream) -> None:
        while True:
            await trio.sleep(self.config.heartbeat_interval)
            await conn.send(wire.Ping())

    async def _handshake(self, conn: MessageStream) -> None:
        credentials = self.config.credentials
        await conn.send(
            wire.Hello(
                self.config.name,
                self.config.namespace,
                tuple(self.entity.subscriptions),
                encode(self.entity),
                heartbeat_timeout=self.config.heartbeat_timeout,
                user=credentials.get("user"),
                password=credentials.get("password"),
                token=credentials.get("token"),
            )
        )
        match await conn.receive():
            case None:
                raise ProtocolError("backend closed the connection during the handshake")
            case wire.Error(message=refusal):
                raise ProtocolError(f"backend refused the agent: {refusal}")
            case wire.Welcome(backend=backend_name):
                log.info("connected to backend", backend=conn.peer, backend_name=backend_name)
            case other:
                raise ProtocolError(f"expected welcome, got {wire.message_type(other)}")

    async def _receive_loop(self, conn: MessageStream) -> None:
        while True:
            with trio.fail_after(self.config.heartbeat_timeout):
                message = await conn.receive()
            match message:
                case None:
                    break
                case wire.Ping():
                    await conn.send(wire.Pong())
                case wire.Checks():
                    self._apply_assets(message.assets)
                    self.executor.secrets = dict(message.secrets)
                    self._apply_hooks(message.hooks)
                    self._apply_checks(message.checks)
                    await self._remember_checks(message)
                case wire.Execute():
                    self._execute_now(message.check, message.hooks, message.assets, message.entity, message.secrets)
                case wire.Ack():
                    self._acked = True
                    await self.delivery.acknowledge(message.ids, message.rejected)
                case wire.Error():
                    raise ProtocolError(f"backend error: {message.message}")
                case _:
                    pass  # pong, or one an agent is not sent: ignored, as by version 1 agents
        log.info("backend closed the connection", backend=conn.peer)

    @property
    def _checks_file(self) -> Path | None:
        return self.config.data_dir / CHECKS_FILE if self.config.data_dir else None

    async def _remember_checks(self, message: wire.Checks) -> None:
        if self._checks_file is not None:
            await remember_checks(self._checks_file, message)

    async def _schedule_remembered_checks(self) -> None:
        path = self._checks_file
        message = await remembered_checks(path) if path is not None else None
        if message is None:
            return
        self._apply_assets(message.assets)
        self._apply_hooks(message.hooks)
        self._apply_checks(message.checks)
        log.info("scheduling the checks last received", count=len(message.checks), path=str(path))

    def _apply_checks(self, raw: Sequence[wire.Map]) -> None:
        checks = []
        for i, item in enumerate(raw):
            try:
                checks.append(decode(CheckConfig, item, f"checks[{i}]"))
            except ValidationError as exc:
                log.error("invalid check from backend", error=exc)
        self.scheduler.update(checks)

    def _execute_now(
        self,
        raw_check: wire.Map,
        raw_hooks: Sequence[wire.Map],
        raw_assets: Sequence[wire.Map],
        raw_entity: wire.Map | None = None,
        secrets: wire.SecretEntry | None = None,
    ) -> None:
        """Run a check once, now, as the backend asks (Sensu's ad hoc execution, a round robin turn,
        a proxy request for ``raw_entity``); its hooks, assets and secrets join the known ones for
        the run, since the check may not be one this agent is scheduled to run."""
        try:
            check = decode(CheckConfig, raw_check, "check")
            hooks = [decode(HookConfig, item, f"hooks[{i}]") for i, item in enumerate(raw_hooks)]
            proxy = None if raw_entity is None else decode(Entity, raw_entity, "entity")
            if proxy is not None:
                proxy.validate()
        except ValidationError as exc:
            self.metrics.execute_requests_refused.inc()
            log.error("invalid check execution request from backend", error=exc)
            return
        self.executor.hooks = {**self.executor.hooks, **{h.metadata.name: h for h in hooks}}
        self.executor.assets = {**self.executor.assets, **received_assets(raw_assets)}
        if secrets is not None:
            self.executor.secrets[check.metadata.name] = secrets
        self.scheduler.run_once(check, proxy)

    def _apply_assets(self, raw: Sequence[wire.Map]) -> None:
        self.executor.assets = received_assets(raw)

    def _apply_hooks(self, raw: Sequence[wire.Map]) -> None:
        hooks = {}
        for i, item in enumerate(raw):
            try:
                hook = decode(HookConfig, item, f"hooks[{i}]")
            except ValidationError as exc:
                log.error("invalid hook from backend", error=exc)
                continue
            hooks[hook.metadata.name] = hook
        self.executor.hooks = hooks

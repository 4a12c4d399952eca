"""The agent daemon: connects to the backend, runs the checks it is given, sends their events.

Events go into one bounded outbound channel (every source of events on the agent sends
there); the connection task sends them in batches and keeps a window of unacknowledged
events, which it sends again after a reconnect.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from pipeline import __version__
from pipeline.agent.api import create_agent_app
from pipeline.agent.delivery import Delivery
from pipeline.agent.executor import CheckExecutor
from pipeline.agent.scheduler import Scheduler
from pipeline.agent.spool import Spool
from pipeline.agent.statsd import StatsdConfig, StatsdServer
from pipeline.agent.system import collect_system
from pipeline.errors import ValidationError
from pipeline.http import serve_app
from pipeline.logs import get_logger
from pipeline.metrics import AgentMetrics
from pipeline.model import Check, CheckConfig, Entity, Event, ObjectMeta, entity_subscription, new_event_id
from pipeline.model.check import HookConfig
from pipeline.model.codec import decode, encode
from pipeline.process import plugin_environment
from pipeline.wire import protocol
from pipeline.wire.protocol import FrameDecoder, ProtocolError
from pipeline.wire.stream import MessageStream

log = get_logger("agent")

#: Events produced and not yet handed to the connection.
OUTBOUND_BUFFER = 1024
RETRY_MIN, RETRY_MAX = 0.5, 30.0


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_bytes(data)
    os.replace(partial, path)


#: The last ``checks`` message, kept in the data directory.
CHECKS_FILE = "checks.msgpack"


@dataclass(slots=True)
class AgentConfig:
    name: str
    backend_addrs: list[tuple[str, int]]
    namespace: str = "default"
    subscriptions: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    plugin_dirs: list[Path] = field(default_factory=list)
    api_addr: tuple[str, int] | None = ("127.0.0.1", 3031)
    statsd: StatsdConfig | None = None
    #: where the spool lives; None keeps it in memory (tests, benchmarks)
    data_dir: Path | None = None
    spool_max_bytes: int = 256 * 1024 * 1024


def agent_entity(config: AgentConfig) -> Entity:
    """The agent's own entity, subscribed to ``entity:<name>`` as Sensu agents always are."""
    subscriptions = list(dict.fromkeys([*config.subscriptions, entity_subscription(config.name)]))
    return Entity(
        entity_class="agent",
        system=collect_system(),
        subscriptions=subscriptions,
        last_seen=int(time.time()),
        metadata=ObjectMeta(
            name=config.name,
            namespace=config.namespace,
            labels=dict(config.labels),
            annotations=dict(config.annotations),
        ),
        sensu_agent_version=__version__,
    )


@dataclass(slots=True, frozen=True)
class AgentAddresses:
    api: tuple[str, int] | None
    statsd: tuple[str, int] | None = None


class Agent:
    def __init__(self, config: AgentConfig, metrics: AgentMetrics | None = None) -> None:
        self.config = config
        self.metrics = metrics or AgentMetrics.create()
        self.entity = agent_entity(config)
        self.executor = CheckExecutor(
            self.entity, plugin_environment(config.plugin_dirs), on_extraction_errors=self._count_extraction_errors
        )
        self._outbound_send, self._outbound = trio.open_memory_channel[Event](OUTBOUND_BUFFER)
        self.metrics.queues.watch("agent_outbound", self._outbound_send)  # type: ignore[arg-type]
        self.scheduler = Scheduler(config.name, self._run_check, self.submit, on_skip=self._count_skip)
        spool_path = config.data_dir / "spool.db" if config.data_dir else Path(":memory:")
        self.spool = Spool(spool_path, config.spool_max_bytes)
        self.delivery = Delivery(self.spool, self._outbound, self.metrics)
        self.metrics.spool.watch(lambda: self.spool.count, lambda: self.spool.bytes)
        self.connected = trio.Event()

    async def submit(self, event: Event) -> None:
        """Queue an event for the backend (waits while the outbound queue is full)."""
        await self._outbound_send.send(event)

    async def submit_durably(self, event: Event) -> None:
        """Queue an event and return once it is in the on-disk spool."""
        spooled = self.delivery.spooled_event(event.id)
        await self.submit(event)
        await spooled.wait()

    async def run(self, *, task_status: trio.TaskStatus[AgentAddresses] = trio.TASK_STATUS_IGNORED) -> None:
        log.info("agent starting", agent=self.config.name, subscriptions=",".join(self.entity.subscriptions))
        await trio.to_thread.run_sync(self.spool.open)
        try:
            await self._run_tasks(task_status)
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(self.spool.close)

    def lifecycle_event(self, what: str) -> Event:
        """``agent_started`` / ``agent_stopped``: a change event of the agent's own entity."""
        now = int(time.time())
        namespace = self.entity.metadata.namespace
        check = Check(
            metadata=ObjectMeta(name=what, namespace=namespace),
            status=0,
            output=f"{what} pipeline-agent {__version__} / on {self.entity.system.hostname}",
            executed=now,
            issued=now,
            interval=1,
            processed_by=self.config.name,
        )
        return Event(timestamp=now, entity=self.entity, check=check, metadata=ObjectMeta(namespace=namespace),
                     id=new_event_id())  # fmt: skip

    async def stop(self) -> None:
        """Say ``agent_stopped`` and wait for the backend's ack (the caller bounds the wait)."""
        event = self.lifecycle_event("agent_stopped")
        acknowledged = self.delivery.acknowledged_event(event.id)
        await self.submit(event)
        log.info("agent stopping", agent=self.config.name)
        await acknowledged.wait()

    async def _run_tasks(self, task_status: trio.TaskStatus[AgentAddresses]) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.delivery.run_spooler)
            await self.submit(self.lifecycle_event("agent_started"))
            await nursery.start(self.scheduler.run)
            await self._schedule_remembered_checks()
            api = None
            if self.config.api_addr is not None:
                app = create_agent_app(
                    self.metrics.registry, lambda: self.connected.is_set(), self.submit_durably, self.entity
                )
                api = await nursery.start(serve_app, app, self.config.api_addr)
                log.info("agent API listening", address=f"{api[0]}:{api[1]}")
            statsd = None
            if self.config.statsd is not None:
                server = StatsdServer(self.config.statsd, self.entity, self.submit, self.metrics.registry)
                statsd = await nursery.start(server.run)
            task_status.started(AgentAddresses(api=api, statsd=statsd))
            await self._connect_forever()

    async def _run_check(self, config: CheckConfig, issued: int) -> Event:
        event = await self.executor.execute(config, issued)
        assert event.check is not None
        name = config.metadata.name
        self.metrics.checks_executed.labels(name, str(event.check.status)).inc()
        self.metrics.check_duration.labels(name).observe(event.check.duration)
        log.info("check executed", check=name, status=event.check.status, duration=f"{event.check.duration:.3f}")
        return event

    def _count_extraction_errors(self, config: CheckConfig, errors: list[str]) -> None:
        self.metrics.metric_extraction_errors.labels(config.metadata.name, config.output_metric_format).inc(len(errors))
        log.warning(
            "metric extraction skipped lines",
            check=config.metadata.name,
            format=config.output_metric_format,
            count=len(errors),
            first=errors[0],
        )

    def _count_skip(self, name: str) -> None:
        self.metrics.checks_skipped.labels(name).inc()
        log.warning("check run skipped", check=name, reason="previous run still going")

    async def _connect_forever(self) -> None:
        delay = RETRY_MIN
        attempt = 0
        while True:
            host, port = self.config.backend_addrs[attempt % len(self.config.backend_addrs)]
            attempt += 1
            try:
                stream = await trio.open_tcp_stream(host, port)
            except OSError as exc:
                self.metrics.connection_failures.inc()
                log.warning("backend unreachable", backend=f"{host}:{port}", error=exc, retry_in=f"{delay:.1f}")
            else:
                delay = RETRY_MIN
                await self._serve_connection(MessageStream(stream, f"{host}:{port}"))
            await trio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, RETRY_MAX)

    async def _serve_connection(self, conn: MessageStream) -> None:
        try:
            await self._handshake(conn)
            self.metrics.connected.set(1)
            self.connected.set()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self.delivery.send_loop, conn)
                await self._receive_loop(conn)
                nursery.cancel_scope.cancel()
        except (OSError, trio.BrokenResourceError, ProtocolError) as exc:
            self.metrics.connection_failures.inc()
            log.warning("backend connection lost", backend=conn.peer, error=exc)
        finally:
            self.metrics.connected.set(0)
            self.connected = trio.Event()
            with trio.CancelScope(shield=True):
                await conn.aclose()

    async def _handshake(self, conn: MessageStream) -> None:
        await conn.send(
            protocol.hello(self.config.name, self.config.namespace, self.entity.subscriptions, encode(self.entity))
        )
        reply = await conn.receive()
        if reply is None:
            raise ProtocolError("backend closed the connection during the handshake")
        if reply["type"] == protocol.ERROR:
            raise ProtocolError(f"backend refused the agent: {reply['message']}")
        if reply["type"] != protocol.WELCOME:
            raise ProtocolError(f"expected welcome, got {reply['type']}")
        log.info("connected to backend", backend=conn.peer, backend_name=reply["backend"])

    async def _receive_loop(self, conn: MessageStream) -> None:
        while (message := await conn.receive()) is not None:
            if message["type"] == protocol.CHECKS:
                self._apply_hooks(message["hooks"])
                self._apply_checks(message["checks"])
                await self._remember_checks(message)
            elif message["type"] == protocol.ACK:
                await self.delivery.acknowledge(message["ids"], message["rejected"])
            elif message["type"] == protocol.ERROR:
                raise ProtocolError(f"backend error: {message['message']}")
        log.info("backend closed the connection", backend=conn.peer)

    @property
    def _checks_file(self) -> Path | None:
        return self.config.data_dir / CHECKS_FILE if self.config.data_dir else None

    async def _remember_checks(self, message: dict[str, Any]) -> None:
        """Keep the last checks received on disk, so a restart without a backend still runs them."""
        path = self._checks_file
        if path is not None:
            data = protocol.encode_frame({"checks": message["checks"], "hooks": message["hooks"], "type": "checks"})
            await trio.to_thread.run_sync(_write_atomically, path, data)

    async def _schedule_remembered_checks(self) -> None:
        path = self._checks_file
        if path is None or not path.exists():
            return
        try:
            (message,) = FrameDecoder().feed(await trio.to_thread.run_sync(path.read_bytes))
        except (OSError, ValueError, ProtocolError) as exc:
            log.error("remembered checks unreadable; waiting for the backend", path=str(path), error=exc)
            return
        self._apply_hooks(message["hooks"])
        self._apply_checks(message["checks"])
        log.info("scheduling the checks last received", count=len(message["checks"]), path=str(path))

    def _apply_checks(self, raw: Sequence[Any]) -> None:
        checks = []
        for i, item in enumerate(raw):
            try:
                checks.append(decode(CheckConfig, item, f"checks[{i}]"))
            except ValidationError as exc:
                log.error("invalid check from backend", error=exc)
        self.scheduler.update(checks)

    def _apply_hooks(self, raw: Sequence[Any]) -> None:
        hooks = {}
        for i, item in enumerate(raw):
            try:
                hook = decode(HookConfig, item, f"hooks[{i}]")
            except ValidationError as exc:
                log.error("invalid hook from backend", error=exc)
                continue
            hooks[hook.metadata.name] = hook
        self.executor.hooks = hooks

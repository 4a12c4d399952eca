"""The agent transport server: handshake, checks for the agent, events in, acks out.

One task per connection reads frames. Keepalives and heartbeats are answered at once; events
go through a per-connection queue (larger than the agent's send window, so reading never
waits on the event processor and a keepalive is never stuck behind events) to a second task
that submits them; the processor's replies are sent back as ``ack`` frames in batches by a
third. A malformed or oversized frame, a failed TLS handshake, wrong credentials or a
silent peer close that connection only, are counted, and are logged with the peer.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Callable, Sequence
from typing import Any

import trio

from pipeline.backend.agent_events import AgentEvents, decode_agent_event, id_of
from pipeline.backend.auth import AgentCredentials, AuthenticationError
from pipeline.backend.eventd import EventProcessor, Outcome
from pipeline.backend.intake import STORE_REFUSED
from pipeline.backend.liveness import Liveness
from pipeline.core.agent_rights import Refusal, refusal
from pipeline.errors import MessageError, ProtocolError, ValidationError, first_error
from pipeline.logs import get_logger
from pipeline.metrics import BackendMetrics
from pipeline.model import DEFAULT_NAMESPACE, CheckConfig, Entity, Event, entity_subscription
from pipeline.model.asset import Asset
from pipeline.model.check import HookConfig
from pipeline.model.codec import decode, encode
from pipeline.wire.messages import (
    PROTOCOL_VERSION,
    Ack,
    Checks,
    Deregister,
    Error,
    EventData,
    Events,
    Execute,
    Hello,
    Keepalive,
    Message,
    Ping,
    Pong,
    Rejected,
    Welcome,
    message_type,
)
from pipeline.wire.stream import MessageStream

log = get_logger("backend.transport")

HANDSHAKE_TIMEOUT = 15.0
#: A connection that says nothing for this long is dead, unless the agent asked for another timeout.
DEFAULT_HEARTBEAT_TIMEOUT = 15.0
#: ``events`` frames read and not yet submitted, per connection; each frame holds at least
#: one event, so an agent keeping to its send window never fills it.
FRAMES_BUFFERED = 1024
#: Refused events are logged once per agent and reason, then at most once per this many seconds.
REFUSAL_LOG_INTERVAL = 60.0


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class _Acks:
    """Outcomes for one connection, waiting to be sent back as one ``ack`` frame."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.rejected: list[Rejected] = []
        self.failed = False
        self.ready = trio.Event()
        #: the agent deregistered on this connection: a keepalive still in flight must not revive it
        self.deregistered = False

    def reply(self, event_id: str, outcome: Outcome) -> None:
        if outcome is Outcome.REFUSED:  # final: the agent sets it aside and goes on
            self.reject(event_id, STORE_REFUSED, "store")
            return
        if outcome is Outcome.FAILED:
            self.failed = True
        else:
            self.ids.append(event_id)
        self.ready.set()

    def reject(self, event_id: str, error: str, reason: str = "") -> None:
        """``reason``: why an agent may not write the event (absent for an invalid event)."""
        self.rejected.append(Rejected(event_id, error, reason))
        self.ready.set()

    def take(self) -> tuple[list[str], list[Rejected]]:
        ids, rejected = self.ids, self.rejected
        self.ids, self.rejected = [], []
        self.ready = trio.Event()
        return ids, rejected


class _RefusalLog:
    """One log line per agent and reason, then one per :data:`REFUSAL_LOG_INTERVAL` at most,
    saying how many were refused meanwhile: a misconfigured agent must not flood the log."""

    def __init__(self) -> None:
        self._last: dict[tuple[str, str], float] = {}
        self._unlogged: dict[tuple[str, str], int] = {}

    def refused(self, agent: str, event_id: str, why: Refusal) -> None:
        key, now = (agent, why.reason), trio.current_time()
        last = self._last.get(key)
        if last is not None and now - last < REFUSAL_LOG_INTERVAL:
            self._unlogged[key] = self._unlogged.get(key, 0) + 1
            return
        self._last[key] = now
        log.warning("event refused: an agent may write only its own namespace, its own entity and proxies",
                    agent=agent, reason=why.reason, event_id=event_id, error=why.message,
                    refused_since_last_line=self._unlogged.pop(key, 0))  # fmt: skip


class TransportServer:
    def __init__(
        self,
        host: str,
        port: int,
        eventd: EventProcessor,
        checks_for: Callable[[list[str], str], tuple[list[CheckConfig], list[HookConfig], list[Asset]]],
        metrics: BackendMetrics,
        *,
        liveness: Liveness | None = None,
        credentials: AgentCredentials | None = None,
        ssl_context: ssl.SSLContext | None = None,
        name: str | None = None,
        namespace_exists: Callable[[str], bool] = lambda namespace: True,
        secrets_for: Callable[[list[CheckConfig], bool], dict[str, Any]] = lambda checks, tls: {},
    ) -> None:
        self.host = host
        self.port = port
        self.eventd = eventd
        self.checks_for = checks_for
        self.metrics = metrics
        self.liveness = liveness
        self.credentials = credentials or AgentCredentials()
        self.ssl_context = ssl_context
        self.name = name or socket.gethostname()
        self.namespace_exists = namespace_exists
        #: the ``secrets`` of a checks message for these checks (over TLS or not): see pipeline.backend.secrets
        self.secrets_for = secrets_for
        #: connected agents, to send changed checks to
        self._agents: dict[int, tuple[MessageStream, Entity]] = {}
        #: (namespace, name) of every entity registered with class ``agent``: no other agent may
        #: write about them (filled by the backend from the store, and by each handshake)
        self.agent_entities: set[tuple[str, str]] = set()
        self._refusals = _RefusalLog()

    def is_agent(self, namespace: str, name: str) -> bool:
        return (namespace, name) in self.agent_entities

    async def broadcast_checks(self) -> None:
        """Send every connected agent its checks again (they changed)."""
        for conn, entity in list(self._agents.values()):
            checks, hooks, assets = self.checks_for(entity.subscriptions, entity.metadata.namespace or "default")
            try:
                await conn.send(self._checks_message(checks, hooks, assets))
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                continue  # that connection's own task notices and ends it
        log.info("checks sent again", agents=len(self._agents))

    def _checks_message(self, checks: list[CheckConfig], hooks: list[HookConfig], assets: Sequence[Asset]) -> Checks:
        secrets = self.secrets_for(checks, self.ssl_context is not None)
        return Checks(tuple(encode(c) for c in checks), tuple(encode(h) for h in hooks),
                      tuple(encode(a) for a in assets), secrets)  # fmt: skip

    def _execute_message(
        self, check: CheckConfig, hooks: list[HookConfig], assets: Sequence[Asset], entity: Entity | None
    ) -> Execute:
        secrets = self.secrets_for([check], self.ssl_context is not None).get(check.metadata.name)
        return Execute(encode(check), tuple(encode(h) for h in hooks), tuple(encode(a) for a in assets),
                       None if entity is None else encode(entity), secrets or None)  # fmt: skip

    def _subscribed(self, namespace: str, subscriptions: list[str]) -> list[tuple[MessageStream, Entity]]:
        """The connections of ``namespace``'s agents that have one of ``subscriptions`` (``entity:<name>`` too)."""
        wanted = set(subscriptions)
        return [
            (conn, entity)
            for conn, entity in list(self._agents.values())
            if (entity.metadata.namespace or DEFAULT_NAMESPACE) == namespace
            and wanted & {*entity.subscriptions, entity_subscription(entity.name)}
        ]

    def connected_entities(self) -> list[Entity]:
        """The entities of the agents connected here."""
        return [entity for _, entity in list(self._agents.values())]

    def connected_agents(self, namespace: str, subscriptions: list[str]) -> list[str]:
        """The names of the connected agents of ``namespace`` that have one of ``subscriptions``."""
        return sorted({entity.name for _, entity in self._subscribed(namespace, subscriptions)})

    async def _send(self, conn: MessageStream, message: Message) -> bool:
        try:
            await conn.send(message)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            return False  # that connection's own task notices and ends it
        return True

    async def execute(
        self,
        check: CheckConfig,
        hooks: list[HookConfig],
        subscriptions: list[str],
        entity: Entity | None = None,
        assets: Sequence[Asset] = (),
    ) -> int:
        """Ask every connected agent of the check's namespace that has one of ``subscriptions``
        (``entity:<name>`` included) to run ``check`` once now (for the proxy ``entity`` if given);
        returns how many were asked."""
        message = self._execute_message(check, hooks, assets, entity)
        asked = 0
        for conn, _ in self._subscribed(check.metadata.namespace or DEFAULT_NAMESPACE, subscriptions):
            asked += await self._send(conn, message)
        log.debug("check execution requested", check=check.metadata.name, subscriptions=",".join(subscriptions),
                  agents=asked, proxy=entity.name if entity else "")  # fmt: skip
        return asked

    async def execute_on(
        self,
        agent: str,
        check: CheckConfig,
        hooks: list[HookConfig],
        entity: Entity | None = None,
        assets: Sequence[Asset] = (),
    ) -> bool:
        """Ask the connected agent named ``agent`` (in the check's namespace) to run ``check`` once
        now, for the proxy ``entity`` if given; False when it is not connected (or just went)."""
        namespace = check.metadata.namespace or DEFAULT_NAMESPACE
        message = self._execute_message(check, hooks, assets, entity)
        for conn, connected in list(self._agents.values()):
            mine = connected.name == agent and (connected.metadata.namespace or DEFAULT_NAMESPACE) == namespace
            if mine and await self._send(conn, message):
                return True
        return False

    def check_exposure(self) -> None:
        """Refuse to accept unauthenticated agents from the network (raises ValueError)."""
        if not self.credentials.configured and not is_loopback(self.host):
            raise ValueError(
                f"agent transport on {self.host}:{self.port} is not a loopback address and no agent credentials"
                " are configured (--agent-user USER:PASSWORD or --agent-token TOKEN)"
            )

    async def run(self, *, task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED) -> None:
        self.check_exposure()
        try:
            listeners = await trio.open_tcp_listeners(self.port, host=self.host)
        except OSError as exc:
            raise OSError(exc.errno, f"agent transport on {self.host}:{self.port}: {exc.strerror}") from exc
        address = listeners[0].socket.getsockname()[:2]
        log.info("transport listening", address=f"{address[0]}:{address[1]}", tls=self.ssl_context is not None)
        if not self.credentials.configured:  # only on loopback (check_exposure): the safe default, not a problem
            log.info("no agent credentials configured: accepting agents on the loopback address only")
        task_status.started((address[0], address[1]))
        await trio.serve_listeners(self._serve, listeners)

    async def _serve(self, stream: trio.SocketStream) -> None:
        try:
            host, port = stream.socket.getpeername()[:2]
            peer = f"{host}:{port}"
        except OSError:
            peer = "unknown"
        byte_stream: trio.abc.Stream = stream
        if self.ssl_context is not None:
            byte_stream = trio.SSLStream(stream, self.ssl_context, server_side=True)
        conn = MessageStream(byte_stream, peer)
        # except*: the connection's tasks run in a nursery, which raises exception groups
        try:
            await self._serve_agent(conn)
        except* ProtocolError as group:
            self.metrics.transport_errors.labels("protocol").inc()
            log.warning("closing connection on protocol error", peer=peer, error=first_error(group))
        except* AuthenticationError as group:
            self.metrics.auth_failures.inc()
            log.warning("agent refused", peer=peer, error=first_error(group))
        except* trio.TooSlowError:
            self.metrics.transport_errors.labels("heartbeat").inc()
            log.warning("closing silent connection", peer=peer)
        except* (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as group:
            error = first_error(group)
            if isinstance(error.__cause__, ssl.SSLError):
                self.metrics.transport_errors.labels("tls").inc()
                log.warning("TLS handshake failed", peer=peer, error=error.__cause__)
            else:
                log.info("agent connection lost", peer=peer, error=error)
        finally:
            with trio.CancelScope(shield=True):
                with trio.move_on_after(1):  # a TLS close_notify to a dead peer must not hang us
                    await conn.aclose()

    async def _receive_hello(self, conn: MessageStream) -> Hello:
        try:
            with trio.fail_after(HANDSHAKE_TIMEOUT):
                hello = await conn.receive()
        except trio.TooSlowError:
            raise ProtocolError(f"no hello within {HANDSHAKE_TIMEOUT:.0f} s") from None
        except MessageError as exc:  # a frame read, but not a message: the agent is told which field
            await conn.send(Error(str(exc)))
            raise
        if hello is None:
            raise ProtocolError("closed before the handshake")
        if not isinstance(hello, Hello):
            raise ProtocolError(f"expected hello, got {message_type(hello)}")
        return hello

    async def _handshake(self, conn: MessageStream) -> tuple[Entity, float]:
        hello = await self._receive_hello(conn)
        if hello.version != PROTOCOL_VERSION:
            await conn.send(Error(f"unsupported protocol version {hello.version!r}"))
            raise ProtocolError(f"agent speaks protocol version {hello.version!r}")
        try:
            self.credentials.authenticate(hello.credentials)
        except AuthenticationError as exc:
            await conn.send(Error(str(exc)))
            raise
        try:
            entity = decode(Entity, hello.entity, "entity")
            entity.validate()
        except ValidationError as exc:
            await conn.send(Error(f"invalid entity: {exc}"))
            raise ProtocolError(f"invalid entity in hello: {exc}") from None
        namespace = entity.metadata.namespace or DEFAULT_NAMESPACE
        if not self.namespace_exists(namespace):  # as Sensu Go's agentd: an agent lives in a namespace that exists
            message = f"namespace {namespace!r} does not exist: declare it (a Namespace resource) on the backend"
            await conn.send(Error(message))
            raise ProtocolError(message)
        return entity, hello.heartbeat_timeout_or(DEFAULT_HEARTBEAT_TIMEOUT)

    async def _serve_agent(self, conn: MessageStream) -> None:
        entity, heartbeat_timeout = await self._handshake(conn)
        name, namespace = entity.metadata.name, entity.metadata.namespace or "default"
        await conn.send(Welcome(self.name))
        self.agent_entities.add((namespace, name))
        # Reachable from here on (changed checks, ad hoc executions): the agent knows it is connected.
        self._agents[id(conn)] = (conn, entity)
        self.metrics.agents_connected.inc()
        acks = _Acks()
        frames_in, frames_out = trio.open_memory_channel[Events](FRAMES_BUFFERED)
        try:
            if self.liveness is not None:
                await self.liveness.register(entity)
            checks, hooks, assets = self.checks_for(entity.subscriptions, namespace)
            await conn.send(self._checks_message(checks, hooks, assets))
            log.info("agent connected", agent=name, peer=conn.peer, subscriptions=",".join(entity.subscriptions))
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._send_acks, conn, acks, nursery.cancel_scope)
                nursery.start_soon(self._submit_frames, frames_out, entity, acks)
                while True:
                    with trio.fail_after(heartbeat_timeout):
                        message = await conn.receive()
                    if message is None:
                        break
                    await self._dispatch(conn, message, frames_in, entity, acks)
                nursery.cancel_scope.cancel()
        finally:
            self._agents.pop(id(conn), None)
            self.metrics.agents_connected.dec()
            log.info("agent disconnected", agent=name, peer=conn.peer)

    async def _dispatch(
        self,
        conn: MessageStream,
        message: Message,
        frames: trio.MemorySendChannel[Events],
        entity: Entity,
        acks: _Acks,
    ) -> None:
        match message:
            case Events():
                await frames.send(message)
            case Ping():
                await conn.send(Pong())
            case Keepalive(event=raw):
                if not acks.deregistered:
                    await self._keepalive(raw, entity)
            case Deregister(id=request_id):
                await self._deregister(request_id, entity, acks)
            case Pong():
                pass
            case _:
                raise ProtocolError(f"unexpected {message_type(message)} message from an agent")

    async def _keepalive(self, raw: EventData, entity: Entity) -> None:
        try:
            event = decode_agent_event(raw)
        except ValidationError as exc:
            self.metrics.events_rejected.labels("keepalive").inc()
            log.warning("invalid keepalive", agent=entity.name, error=exc)
            return
        if event.entity_name != entity.name or event.check_name != "keepalive":
            raise ProtocolError(f"keepalive for {event.entity_name}/{event.check_name} from agent {entity.name}")
        why = refusal(event, entity, self.is_agent)
        if why is not None:
            raise ProtocolError(f"keepalive from agent {entity.name}: {why.message}")
        if self.liveness is not None:
            await self.liveness.keepalive(event)

    async def _deregister(self, request_id: str, entity: Entity, acks: _Acks) -> None:
        acks.deregistered = True
        key = (entity.metadata.namespace or DEFAULT_NAMESPACE, entity.name)
        if self.liveness is not None:
            await self.liveness.deregister(*key)
        self.agent_entities.discard(key)
        acks.reply(request_id, Outcome.STORED)

    async def _submit_frames(self, frames: trio.MemoryReceiveChannel[Events], agent: Entity, acks: _Acks) -> None:
        decoder = AgentEvents(agent.name)
        try:
            async for message in frames:
                await self._accept_events(message.events, agent, acks, decoder)
        finally:
            decoder.close()

    async def _accept_events(
        self, raw_events: Sequence[EventData], agent: Entity, acks: _Acks, decoder: AgentEvents
    ) -> None:
        self.metrics.events_received.labels("agent").inc(len(raw_events))
        decode_event = decoder.decode
        accepted: list[Event] = []
        for raw in raw_events:
            try:
                event = decode_event(raw)
            except ValidationError as exc:
                event_id = id_of(raw)
                self.metrics.events_rejected.labels("agent").inc()
                log.warning("invalid event from agent", agent=agent.name, event_id=event_id, error=exc)
                acks.reject(event_id, str(exc))
                continue
            why = refusal(event, agent, self.is_agent)
            if why is not None:
                # Answered at once and never stored: the agent forgets it, the events behind it go on.
                self.metrics.transport_events_refused.labels(why.reason).inc()
                self._refusals.refused(agent.name, event.id, why)
                acks.reject(event.id, why.message, why.reason)
                continue
            accepted.append(event)
        # The frame's events go to the processor at once when its inbox has the room (one wake-up,
        # no task switch per event), else one by one, waiting for the room as before.
        if accepted and not self.eventd.offer(accepted, acks.reply):
            for event in accepted:
                await self.eventd.submit(event, acks.reply)

    async def _send_acks(self, conn: MessageStream, acks: _Acks, scope: trio.CancelScope) -> None:
        while True:
            await acks.ready.wait()
            if acks.failed:
                # The store failed: close, so that the agent sends its window again later.
                log.warning("closing agent connection after a store failure", peer=conn.peer)
                scope.cancel()
                return
            ids, rejected = acks.take()
            await conn.send(Ack(tuple(ids), tuple(rejected)))

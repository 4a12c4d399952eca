"""The agent transport server: handshake, checks for the agent, events in, acks out.

One task per connection reads frames; events go to the event processor, whose replies are
collected per connection and sent back as ``ack`` frames in batches by a second task. A
malformed or oversized frame closes that connection only, is counted, and is logged with
the peer.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import msgpack
import trio

from pipeline.backend.eventd import EventProcessor, Outcome
from pipeline.errors import ValidationError
from pipeline.logs import get_logger
from pipeline.metrics import BackendMetrics
from pipeline.model import CheckConfig, Entity, Event
from pipeline.model.check import HookConfig
from pipeline.model.codec import decode, encode
from pipeline.wire import protocol
from pipeline.wire.protocol import ProtocolError
from pipeline.wire.stream import MessageStream

log = get_logger("backend.transport")

HANDSHAKE_TIMEOUT = 15.0


class _Acks:
    """Outcomes for one connection, waiting to be sent back as one ``ack`` frame."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.rejected: list[dict[str, str]] = []
        self.failed = False
        self.ready = trio.Event()

    def reply(self, event_id: str, outcome: Outcome) -> None:
        if outcome is Outcome.FAILED:
            self.failed = True
        else:
            self.ids.append(event_id)
        self.ready.set()

    def reject(self, event_id: str, error: str) -> None:
        self.rejected.append({"id": event_id, "error": error})
        self.ready.set()

    def take(self) -> tuple[list[str], list[dict[str, str]]]:
        ids, rejected = self.ids, self.rejected
        self.ids, self.rejected = [], []
        self.ready = trio.Event()
        return ids, rejected


def decode_agent_event(raw: Any) -> Event:
    """An event from an agent's frame (msgpack bytes or a map), validated (raises ValidationError)."""
    event = Event.from_msgpack(raw) if isinstance(raw, bytes) else Event.from_dict(raw)
    event.validate()
    if not event.id:
        raise ValidationError("id", "an agent event must carry an id")
    return event


def _id_of(raw: Any) -> str:
    """The id of an event that failed to decode, if it can be read at all (for the reject)."""
    if isinstance(raw, bytes):
        try:
            raw = msgpack.unpackb(raw, raw=False)
        except (ValueError, msgpack.UnpackException):
            return ""
    value = raw.get("id", "") if isinstance(raw, dict) else ""
    return value if isinstance(value, str) else ""


class TransportServer:
    def __init__(
        self,
        host: str,
        port: int,
        eventd: EventProcessor,
        checks_for: Callable[[list[str], str], tuple[list[CheckConfig], list[HookConfig]]],
        metrics: BackendMetrics,
        *,
        name: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.eventd = eventd
        self.checks_for = checks_for
        self.metrics = metrics
        self.name = name or socket.gethostname()

    async def run(self, *, task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            listeners = await trio.open_tcp_listeners(self.port, host=self.host)
        except OSError as exc:
            raise OSError(exc.errno, f"agent transport on {self.host}:{self.port}: {exc.strerror}") from exc
        address = listeners[0].socket.getsockname()[:2]
        log.info("transport listening", address=f"{address[0]}:{address[1]}")
        task_status.started((address[0], address[1]))
        await trio.serve_listeners(self._serve, listeners)

    async def _serve(self, stream: trio.SocketStream) -> None:
        try:
            host, port = stream.socket.getpeername()[:2]
            peer = f"{host}:{port}"
        except OSError:
            peer = "unknown"
        conn = MessageStream(stream, peer)
        try:
            await self._serve_agent(conn)
        except ProtocolError as exc:
            self.metrics.transport_errors.labels("protocol").inc()
            log.warning("closing connection on protocol error", peer=peer, error=exc)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            log.info("agent connection lost", peer=peer, error=exc)
        finally:
            with trio.CancelScope(shield=True):
                await conn.aclose()

    async def _handshake(self, conn: MessageStream) -> Entity:
        try:
            with trio.fail_after(HANDSHAKE_TIMEOUT):
                hello = await conn.receive()
        except trio.TooSlowError:
            raise ProtocolError(f"no hello within {HANDSHAKE_TIMEOUT:.0f} s") from None
        if hello is None:
            raise ProtocolError("closed before the handshake")
        if hello["type"] != protocol.HELLO:
            raise ProtocolError(f"expected hello, got {hello['type']}")
        if hello["version"] != protocol.PROTOCOL_VERSION:
            await conn.send(protocol.error(f"unsupported protocol version {hello['version']!r}"))
            raise ProtocolError(f"agent speaks protocol version {hello['version']!r}")
        try:
            entity = decode(Entity, hello["entity"], "entity")
            entity.validate()
        except ValidationError as exc:
            await conn.send(protocol.error(f"invalid entity: {exc}"))
            raise ProtocolError(f"invalid entity in hello: {exc}") from None
        return entity

    async def _serve_agent(self, conn: MessageStream) -> None:
        entity = await self._handshake(conn)
        name, namespace = entity.metadata.name, entity.metadata.namespace or "default"
        await conn.send(protocol.welcome(self.name))
        checks, hooks = self.checks_for(entity.subscriptions, namespace)
        await conn.send(protocol.checks([encode(c) for c in checks], [encode(h) for h in hooks]))
        log.info("agent connected", agent=name, peer=conn.peer, subscriptions=",".join(entity.subscriptions))
        self.metrics.agents_connected.inc()
        acks = _Acks()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._send_acks, conn, acks, nursery.cancel_scope)
                while (message := await conn.receive()) is not None:
                    if message["type"] != protocol.EVENTS:
                        raise ProtocolError(f"unexpected {message['type']} message from an agent")
                    await self._accept_events(message["events"], name, acks)
                nursery.cancel_scope.cancel()
        finally:
            self.metrics.agents_connected.dec()
            log.info("agent disconnected", agent=name, peer=conn.peer)

    async def _accept_events(self, raw_events: Any, agent: str, acks: _Acks) -> None:
        if not isinstance(raw_events, list):
            raise ProtocolError("events message without a list of events")
        for raw in raw_events:
            self.metrics.events_received.labels("agent").inc()
            try:
                event = decode_agent_event(raw)
            except ValidationError as exc:
                event_id = _id_of(raw)
                self.metrics.events_rejected.labels("agent").inc()
                log.warning("invalid event from agent", agent=agent, event_id=event_id, error=exc)
                acks.reject(str(event_id), str(exc))
                continue
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
            await conn.send(protocol.ack(ids, rejected))

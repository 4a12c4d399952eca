"""The agent's Sensu 1.x client socket: TCP and UDP on one address (default 127.0.0.1:3030).

One JSON check result per TCP connection or UDP datagram (see
:mod:`pipeline.core.legacy_result`). Over TCP the agent reads until the bytes are valid JSON
(5 s at most), answers ``ok`` once the event is in the on-disk spool, ``invalid: <why>``
otherwise, and ``pong`` to ``ping``. A malformed datagram is counted and logged; unlike Sensu
Go's agent, the UDP listener keeps serving after one. JSON is read strictly
(:mod:`pipeline.model.strict_json`): nesting deeper than 64 levels, NaN or a lone surrogate is
refused (``invalid: malformed JSON at line L column C: ...``), counted and logged, and a
result that fails in a way we did not foresee costs that result only, never the agent.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Awaitable, Callable

import trio

from pipeline.agent.metrics import AgentMetrics
from pipeline.core.legacy_result import is_ping, parse_legacy_result
from pipeline.errors import EventTooLarge, MalformedJsonError, ValidationError
from pipeline.logs import get_logger
from pipeline.model import Entity, Event
from pipeline.model.codec import load_json

log = get_logger("agent.socket")

#: How long a TCP client has to send a complete result.
READ_TIMEOUT = 5.0
#: A result larger than this is refused.
MAX_RESULT_BYTES = 1024 * 1024
MAX_DATAGRAM = 65536


class ClientSocketServer:
    def __init__(
        self,
        address: tuple[str, int],
        entity: Entity,
        submit: Callable[[Event], Awaitable[None]],
        metrics: AgentMetrics,
        *,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.address = address
        self.entity = entity
        self.submit = submit
        self.metrics = metrics
        self._wall_clock = wall_clock

    async def run(self, *, task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED) -> None:
        host, port = self.address
        try:
            listeners = await trio.open_tcp_listeners(port, host=host)
        except OSError as exc:
            raise OSError(exc.errno, f"client socket on {host}:{port}: {exc.strerror}") from exc
        bound = listeners[0].socket.getsockname()[:2]
        udp = trio.socket.socket(socket.AF_INET6 if ":" in bound[0] else socket.AF_INET, socket.SOCK_DGRAM)
        with udp:
            try:
                await udp.bind(bound)  # the port TCP got, so that port 0 works
            except OSError as exc:
                raise OSError(exc.errno, f"client socket (UDP) on {bound[0]}:{bound[1]}: {exc.strerror}") from exc
            log.info("client socket listening", address=f"{bound[0]}:{bound[1]}", transports="tcp,udp")
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._serve_udp, udp)
                await nursery.start(trio.serve_listeners, self._serve_tcp, listeners)
                task_status.started((bound[0], bound[1]))

    def _failed(self, transport: str, reason: str, peer: str, error: object) -> None:
        self.metrics.socket_errors.labels(transport, reason).inc()
        log.warning("check result refused", transport=transport, peer=peer, reason=reason, error=error)

    async def _serve_tcp(self, stream: trio.SocketStream) -> None:
        try:
            host, port = stream.socket.getpeername()[:2]
            peer = f"{host}:{port}"
        except OSError:
            peer = "unknown"
        async with stream:
            try:
                reply = await self._tcp_reply(stream, peer)
                await stream.send_all(reply)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                log.info("client socket connection lost", peer=peer, error=exc)
            except Exception:  # a bug of ours with one result must not stop the agent
                self.metrics.socket_errors.labels("tcp", "internal").inc()
                log.exception("client socket result failed", transport="tcp", peer=peer)

    async def _tcp_reply(self, stream: trio.SocketStream, peer: str) -> bytes:
        data = b""
        with trio.move_on_after(READ_TIMEOUT) as reading:
            while chunk := await stream.receive_some(65536):
                data += chunk
                if len(data) > MAX_RESULT_BYTES:
                    self._failed("tcp", "too_large", peer, f"over {MAX_RESULT_BYTES} bytes")
                    return f"invalid: a result must be at most {MAX_RESULT_BYTES} bytes".encode()
                if is_ping(data) or _complete_json(data):
                    break
        if is_ping(data):
            return b"pong"
        if reading.cancelled_caught and not _complete_json(data):
            self._failed("tcp", "timeout", peer, f"no complete JSON within {READ_TIMEOUT:.0f} s")
            return f"invalid: no complete JSON within {READ_TIMEOUT:.0f} s".encode()
        # Outside the read deadline: a cancelled submit may already have queued the event,
        # and submitting it again would deliver it twice under two ids.
        return await self._accept("tcp", data, peer)

    async def _accept(self, transport: str, data: bytes, peer: str) -> bytes:
        try:
            event = parse_legacy_result(data, self.entity, self._wall_clock())
        except ValidationError as exc:
            self._failed(transport, "invalid", peer, exc)
            return f"invalid: {exc}".encode()
        try:
            await self.submit(event)
        except EventTooLarge as exc:  # counted and logged by the agent as well, once
            self.metrics.socket_errors.labels(transport, "too_large").inc()
            return f"invalid: {exc}".encode()
        self.metrics.socket_results.labels(transport).inc()
        # debug, not info: one line per result is the cost of a result (the counter says how many)
        log.debug("check result received", transport=transport, peer=peer, check=event.check_name,
                 entity=event.check.proxy_entity_name if event.check else "")  # fmt: skip
        return b"ok"

    async def _serve_udp(self, udp: trio.socket.SocketType) -> None:
        while True:
            data, sender = await udp.recvfrom(MAX_DATAGRAM)
            peer = f"{sender[0]}:{sender[1]}"
            if is_ping(data):
                continue
            try:
                await self._accept("udp", data, peer)
            except Exception:  # a bug of ours with one datagram must not stop the agent
                self.metrics.socket_errors.labels("udp", "internal").inc()
                log.exception("client socket result failed", transport="udp", peer=peer)


#: Errors that more bytes cannot mend: a result that shows one is answered at once.
_FINAL = frozenset({"depth", "number", "surrogate"})


def _complete_json(data: bytes) -> bool:
    """Whether ``data`` is read far enough: valid JSON, or JSON no more bytes can make valid."""
    try:
        load_json(data)
    except MalformedJsonError as exc:
        return exc.reason in _FINAL
    return True

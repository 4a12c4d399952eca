"""The agent's Sensu 1.x client socket: TCP and UDP on one address (default 127.0.0.1:3030).

One JSON check result per TCP connection or UDP datagram (see
:mod:`pipeline.core.legacy_result`). Over TCP the agent reads until the bytes are valid JSON
(5 s at most), answers ``ok`` once the event is in the on-disk spool, ``invalid: <why>``
for a result it refuses, ``error: <why>`` when the spool does not take it in time (a full or
failing disk: not spooled, send it again), and ``pong`` to ``ping``. A malformed datagram is
counted and logged; unlike Sensu Go's agent, the UDP listener keeps serving after one. JSON is
read strictly (:mod:`pipeline.model.strict_json`): nesting deeper than 64 levels, NaN or a lone
surrogate is refused (``invalid: malformed JSON at line L column C: ...``), counted and logged,
and a result that fails in a way we did not foresee costs that result only, never the agent.

How TCP is served (a connection carries one small result, so what a connection costs is what
a result costs): one accept loop per listening socket takes every pending connection at each
wakeup and reads each at once, on plain non-blocking sockets, since a client's result is
nearly always there by then. A complete result goes to one of :data:`ANSWERERS` tasks, which
waits for the spool and answers; a refusal or ``pong`` is answered by the loop itself. Only a
connection whose bytes are not all there yet (a slow client) gets a task of its own, which
reads on until the 5 s deadline, so it holds up nobody. An answer the socket cannot take at
once (a long refusal to a client that does not read) is finished by a task of its own too.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import trio

from pipeline.agent.metrics import AgentMetrics
from pipeline.core.legacy_result import is_ping, legacy_event, parse_legacy_result
from pipeline.errors import EventTooLarge, MalformedJsonError, SpoolUnavailable, ValidationError
from pipeline.logs import get_logger
from pipeline.model import Entity, Event
from pipeline.model.codec import load_json

log = get_logger("agent.socket")

#: How long a TCP client has to send a complete result.
READ_TIMEOUT = 5.0
#: A result larger than this is refused.
MAX_RESULT_BYTES = 1024 * 1024
MAX_DATAGRAM = 65536
#: Bytes read from a connection at a time.
READ_SIZE = 65536
#: Connections the accept loop takes per wakeup at most, before the other tasks get a turn.
ACCEPT_BATCH = 64
#: Tasks answering complete results once they are spooled: results waiting for the spool at
#: once, at most, before the accept loop waits (as many again wait in their queue).
ANSWERERS = 64

#: accept(2) errors that say the system is out of something (descriptors, memory): counted
#: (``reason="accept"``) and logged, then a pause (as ``trio.serve_listeners`` does), rather
#: than a busy loop or a stopped socket.
ACCEPT_CAPACITY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
ACCEPT_PAUSE = 0.1
#: accept(2) errors about one connection that went away (``trio.SocketListener``'s list).
_IGNORED_ACCEPT_ERRNOS = frozenset(
    getattr(errno, name)
    for name in [
        "EPERM",
        "ECONNABORTED",
        "EPROTO",
        "ENETDOWN",
        "ENOPROTOOPT",
        "EHOSTDOWN",
        "ENONET",
        "EHOSTUNREACH",
        "EOPNOTSUPP",
        "ENETUNREACH",
        "ENOSR",
        "ESOCKTNOSUPPORT",
        "EPROTONOSUPPORT",
        "ETIMEDOUT",
        "ECONNRESET",
    ]
    if hasattr(errno, name)
)
#: The answer, the last bytes of a connection: held back (``MSG_MORE``) so that the close that
#: follows sends them and the FIN in one segment. On loopback the sender's call runs the
#: receiver's side too, so each segment spared is a wakeup and a TCP receive spared, in the
#: agent's time and the client's. Non-blocking for this one call (``MSG_DONTWAIT``): an
#: accepted connection is used as it comes, without a call to make it non-blocking first.
_LAST_SEND = socket.MSG_MORE | socket.MSG_DONTWAIT
#: A connection lost, or the agent's queue closed as the socket restarts: the client gets no answer.
_LOST = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)
#: Errors that more bytes cannot mend: a result that shows one is answered at once.
_FINAL = frozenset({"depth", "number", "surrogate"})

#: A complete result waiting for the spool: its connection, the client's address, the event.
_Spooling = tuple[socket.socket, Any, Event]


def _peer(address: Any) -> str:
    try:
        return f"{address[0]}:{address[1]}"
    except (TypeError, IndexError):
        return "unknown"


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
        self._results = {t: metrics.socket_results.labels(t) for t in ("tcp", "udp")}  # labels() per result cost

    async def run(self, *, task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED) -> None:
        host, port = self.address
        try:
            listeners = await trio.open_tcp_listeners(port, host=host)
        except OSError as exc:
            raise OSError(exc.errno, f"client socket on {host}:{port}: {exc.strerror}") from exc
        bound = listeners[0].socket.getsockname()[:2]
        # Plain sockets: their accept and recv are calls, not trips through the scheduler.
        plain = [socket.socket(fileno=listener.socket.detach()) for listener in listeners]
        udp = trio.socket.socket(socket.AF_INET6 if ":" in bound[0] else socket.AF_INET, socket.SOCK_DGRAM)
        try:
            with udp:
                try:
                    await udp.bind(bound)  # the port TCP got, so that port 0 works
                except OSError as exc:
                    raise OSError(exc.errno, f"client socket (UDP) on {bound[0]}:{bound[1]}: {exc.strerror}") from exc
                log.info("client socket listening", address=f"{bound[0]}:{bound[1]}", transports="tcp,udp")
                await self._serve(plain, udp, (bound[0], bound[1]), task_status)
        finally:
            for listener in plain:
                listener.close()

    async def _serve(
        self, listeners: list[socket.socket], udp: trio.socket.SocketType, bound: tuple[str, int],
        task_status: trio.TaskStatus[tuple[str, int]],
    ) -> None:  # fmt: skip
        spooling, queued = trio.open_memory_channel[_Spooling](ANSWERERS)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._serve_udp, udp)
                for _ in range(ANSWERERS):
                    nursery.start_soon(self._answer_spooled, queued, nursery)
                for listener in listeners:
                    listener.setblocking(False)
                    nursery.start_soon(self._accept_forever, listener, spooling, nursery)
                task_status.started(bound)
        finally:
            with contextlib.suppress(trio.WouldBlock, trio.EndOfChannel):
                while True:  # taken, never answered: the agent stops
                    queued.receive_nowait()[0].close()

    def _failed(self, transport: str, reason: str, peer: str, error: object) -> None:
        self.metrics.socket_errors.labels(transport, reason).inc()
        log.warning("check result refused", transport=transport, peer=peer, reason=reason, error=error)

    # -- TCP: the accept loop -----------------------------------------------------------------

    async def _accept_forever(
        self, listener: socket.socket, spooling: trio.MemorySendChannel[_Spooling], nursery: trio.Nursery
    ) -> None:
        while True:
            await trio.lowlevel.wait_readable(listener)
            for _ in range(ACCEPT_BATCH):
                try:
                    conn, address = listener.accept()
                except BlockingIOError:
                    break
                except OSError as exc:
                    if exc.errno in _IGNORED_ACCEPT_ERRNOS:
                        continue
                    if exc.errno not in ACCEPT_CAPACITY_ERRNOS:
                        raise
                    self.metrics.socket_errors.labels("tcp", "accept").inc()
                    log.error("client socket cannot accept: pausing", error=os.strerror(exc.errno or 0),
                              pause=ACCEPT_PAUSE)  # fmt: skip
                    await trio.sleep(ACCEPT_PAUSE)
                    break
                await self._take(conn, address, spooling, nursery)

    async def _take(
        self, conn: socket.socket, address: Any, spooling: trio.MemorySendChannel[_Spooling], nursery: trio.Nursery
    ) -> None:
        """Read a new connection's result if it is all there, and answer or queue it; else hand
        the connection to a task of its own. Never waits on the client."""
        with self._closed_on_failure(conn, address):
            data, outcome = self._first_read(conn, address)
            if outcome is None:
                deadline = trio.current_time() + READ_TIMEOUT
                nursery.start_soon(self._read_slowly, conn, address, data, deadline)
            elif isinstance(outcome, Event):
                try:
                    spooling.send_nowait((conn, address, outcome))
                except trio.WouldBlock:
                    await spooling.send((conn, address, outcome))  # every answerer busy: wait (backpressure)
            else:
                self._reply(conn, address, outcome, nursery)

    @contextlib.contextmanager
    def _closed_on_failure(self, conn: socket.socket, address: Any) -> Iterator[None]:
        """A connection whose handling fails is closed: lost (logged), or a bug of ours (counted
        and logged: one result must not stop the agent); a cancellation goes on."""
        try:
            yield
        except _LOST as exc:
            conn.close()
            log.info("client socket connection lost", peer=_peer(address), error=exc)
        except Exception:
            conn.close()
            self.metrics.socket_errors.labels("tcp", "internal").inc()
            log.exception("client socket result failed", transport="tcp", peer=_peer(address))
        except BaseException:
            conn.close()
            raise

    def _first_read(self, conn: socket.socket, address: Any) -> tuple[bytes, bytes | Event | None]:
        """The bytes already there, and what they call for: an answer, an event to spool, or None
        (read on, from those bytes)."""
        try:
            data = conn.recv(READ_SIZE, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return b"", None
        if not data:  # closed at once: what the client sent, nothing, is what is judged
            return data, self._judge(data, _peer(address))
        return data, self._examine(data, _peer(address))

    def _examine(self, data: bytes, peer: str, *, whole: bool = False) -> bytes | Event | None:
        """An answer or an event once ``data`` is complete, else None (read on). ``whole``: the
        client closed its side, so ``data`` is judged as it is, complete or not."""
        if len(data) > MAX_RESULT_BYTES:
            self._failed("tcp", "too_large", peer, f"over {MAX_RESULT_BYTES} bytes")
            return f"invalid: a result must be at most {MAX_RESULT_BYTES} bytes".encode()
        if is_ping(data):
            return b"pong"
        try:
            value = load_json(data)  # parsed once: the value is the result's
        except MalformedJsonError as exc:
            if not whole and exc.reason not in _FINAL:
                return None
            return self._refused("tcp", peer, exc)
        return self._event("tcp", value, peer)

    def _judge(self, data: bytes, peer: str) -> bytes | Event:
        """The client stopped sending (it closed its side): ``data`` as it is, whole or not."""
        outcome = self._examine(data, peer, whole=True)
        assert outcome is not None  # judged whole: an answer or an event
        return outcome

    def _refused(self, transport: str, peer: str, exc: ValidationError) -> bytes:
        self._failed(transport, "invalid", peer, exc)
        return f"invalid: {exc}".encode()

    def _event(self, transport: str, value: Any, peer: str) -> bytes | Event:
        try:
            return legacy_event(value, self.entity, self._wall_clock())
        except ValidationError as exc:
            return self._refused(transport, peer, exc)

    # -- TCP: answers -------------------------------------------------------------------------

    async def _answer_spooled(self, queued: trio.MemoryReceiveChannel[_Spooling], nursery: trio.Nursery) -> None:
        """One answerer: for each complete result, its answer once it is in the spool."""
        async for conn, address, event in queued:
            with self._closed_on_failure(conn, address):
                reply = await self._submit("tcp", event, _peer(address))
                self._reply(conn, address, reply, nursery)

    def _reply(self, conn: socket.socket, address: Any, reply: bytes, nursery: trio.Nursery) -> None:
        """Send ``reply`` and close; what the socket cannot take at once, a task sends."""
        try:
            sent = conn.send(reply, _LAST_SEND)
        except BlockingIOError:
            sent = 0
        if sent < len(reply):
            nursery.start_soon(self._send_slowly, trio.SocketStream(trio.socket.from_stdlib_socket(conn)),
                               address, reply[sent:])  # fmt: skip
            return
        conn.close()

    async def _send_slowly(self, stream: trio.SocketStream, address: Any, rest: bytes) -> None:
        async with stream:
            try:
                await stream.send_all(rest)
            except _LOST as exc:
                log.info("client socket connection lost", peer=_peer(address), error=exc)

    async def _submit(self, transport: str, event: Event, peer: str) -> bytes:
        """``ok`` once ``event`` is in the spool, or why it was refused."""
        try:
            await self.submit(event)
        except EventTooLarge as exc:  # counted and logged by the agent as well, once
            self.metrics.socket_errors.labels(transport, "too_large").inc()
            return f"invalid: {exc}".encode()
        except SpoolUnavailable as exc:  # the result is fine; the agent cannot keep it now
            self.metrics.socket_errors.labels(transport, "spool").inc()
            return f"error: {exc}".encode()
        self._results[transport].inc()
        # debug, not info: one line per result is the cost of a result (the counter says how many)
        log.debug("check result received", transport=transport, peer=peer, check=event.check_name,
                  entity=event.check.proxy_entity_name if event.check else "")  # fmt: skip
        return b"ok"

    # -- TCP: slow clients --------------------------------------------------------------------

    async def _read_slowly(self, conn: socket.socket, address: Any, data: bytes, deadline: float) -> None:
        """A client whose result was not all there when accepted (``data``: what was): read on
        until ``deadline``."""
        peer = _peer(address)
        async with trio.SocketStream(trio.socket.from_stdlib_socket(conn)) as stream:
            try:
                reply = await self._slow_reply(stream, peer, data, deadline)
                await stream.send_all(reply)
            except _LOST as exc:
                log.info("client socket connection lost", peer=peer, error=exc)
            except Exception:  # a bug of ours with one result must not stop the agent
                self.metrics.socket_errors.labels("tcp", "internal").inc()
                log.exception("client socket result failed", transport="tcp", peer=peer)

    async def _slow_reply(self, stream: trio.SocketStream, peer: str, data: bytes, deadline: float) -> bytes:
        outcome: bytes | Event | None = None
        with trio.move_on_at(deadline):
            while chunk := await stream.receive_some(READ_SIZE):
                data += chunk
                if (outcome := self._examine(data, peer)) is not None:
                    break
            else:
                outcome = self._judge(data, peer)
        if outcome is None:
            self._failed("tcp", "timeout", peer, f"no complete JSON within {READ_TIMEOUT:.0f} s")
            return f"invalid: no complete JSON within {READ_TIMEOUT:.0f} s".encode()
        if isinstance(outcome, Event):
            # Outside the read deadline: a cancelled submit may already have queued the event,
            # and submitting it again would deliver it twice under two ids.
            return await self._submit("tcp", outcome, peer)
        return outcome

    # -- UDP ----------------------------------------------------------------------------------

    async def _serve_udp(self, udp: trio.socket.SocketType) -> None:
        while True:
            data, sender = await udp.recvfrom(MAX_DATAGRAM)
            peer = _peer(sender)
            if is_ping(data):
                continue
            try:
                await self._accept_datagram(data, peer)
            except Exception:  # a bug of ours with one datagram must not stop the agent
                self.metrics.socket_errors.labels("udp", "internal").inc()
                log.exception("client socket result failed", transport="udp", peer=peer)

    async def _accept_datagram(self, data: bytes, peer: str) -> None:
        try:
            event = parse_legacy_result(data, self.entity, self._wall_clock())
        except ValidationError as exc:
            self._failed("udp", "invalid", peer, exc)
            return
        await self._submit("udp", event, peer)

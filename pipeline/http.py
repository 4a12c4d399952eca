"""The daemons' HTTP/1.1 server: httptools parses, :mod:`pipeline.http_wire` frames, trio carries,
an ASGI app answers.

Why not hypercorn's trio worker, the usual choice: with one keep-alive client on two cores it
answers an empty app 2,657 times a second, this loop 7,207 (``bench/api_events.py``), because
it starts a task per request and restarts an idle-timeout task around each one; the events
API's goal is 3,000 events/s from one client.

What the daemons need, and all this serves: HTTP/1.1 and 1.0 with keep-alive, bodies by
``Content-Length`` or chunked, ``Expect: 100-continue`` (curl sends it for larger bodies),
a body size limit enforced before the body is read (413), a limit on the head (431), an
idle keep-alive timeout, a per-read timeout and a cap on connections (503 beyond). Not
served: HTTP/2, WebSockets, TLS and the ASGI lifespan protocol (the daemons start their
services themselves, in their nursery).

Slow clients cannot hold the server: a request head must arrive whole within
``head_timeout`` of its first byte (nginx's ``client_header_timeout``), a body within
``body_timeout`` of the app's first read, whatever the pace of single bytes; both are
answered 408. When every connection slot is taken, a new connection sheds an idle
keep-alive connection or, failing that, the one that has spent longest on an unfinished
head (a real client sends its head in one packet), before it is refused 503.

A bad request costs its connection only: it is answered (400, 408, 413, 431), counted by
reason in ``<prefix>_errors``, logged with the peer, and the server goes on. A request with
both ``Content-Length`` and ``Transfer-Encoding`` is refused (400): which one frames the body
is what request smuggling plays on. Error bodies take Sensu Go's shape, ``{"code": N,
"message": "..."}`` (:mod:`pipeline.http_answers`). Log lines never carry a secret: see
:func:`~pipeline.http_answers.mask_secrets`.

An app may answer its hottest routes without ASGI (its ``direct`` attribute, a
:data:`~pipeline.http_exchange.Direct`): the scope, the messages and the exchange cost about
as much CPU as the events API's own work on a submission; every limit, refusal and counter
above applies to those requests the same, and their answers are the same bytes.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

import trio
from starlette.types import ASGIApp

from pipeline import http_wire as wire
from pipeline.http_answers import error_body, mask_secrets
from pipeline.http_exchange import Answer, BodyTaker, Direct, Exchange, PeerGone, Refused, check_framing, response
from pipeline.logs import get_logger
from pipeline.metrics import HttpMetrics

log = get_logger("http")

#: Seconds an idle keep-alive connection is kept open (hypercorn's default too).
KEEP_ALIVE_TIMEOUT = 5.0
#: Seconds a request in progress may go without sending a byte.
READ_TIMEOUT = 30.0
#: Seconds from a request head's first byte to its end, however steadily bytes trickle in: 408 beyond.
HEAD_TIMEOUT = 10.0
#: Seconds from the app's first read of a body to its end (1 MiB in 60 s is 17 KiB/s): 408 beyond.
BODY_TIMEOUT = 60.0
#: Bytes of an unfinished request head (request line and headers) kept waiting for its end: 431
#: beyond. A head that arrives whole within one read (64 KiB) is not held to it.
MAX_HEAD_BYTES = 16 * 1024
#: Bytes of a request's body, at most, unless the daemon sets its own: 413 beyond.
MAX_BODY_BYTES = 1024 * 1024
READ_SIZE = 64 * 1024
#: Connections served at once; each one beyond gets 503 with ``Retry-After`` to its first request.
MAX_CONNECTIONS = 1000
#: After a refusal, the request's unread rest is read and dropped for this long (bytes, seconds), so
#: that a client still sending its body gets to read the answer rather than a connection reset.
LINGER_BYTES = 64 * 1024 * 1024
LINGER_SECONDS = 2.0
#: Requests a connection may read without waiting (see ``_Connection._read_waiting``) before it
#: lets the other tasks run.
YIELD_EVERY = 8


@dataclass(slots=True, frozen=True)
class Limits:
    max_body: int = MAX_BODY_BYTES
    max_connections: int = MAX_CONNECTIONS
    keep_alive_timeout: float = KEEP_ALIVE_TIMEOUT
    read_timeout: float = READ_TIMEOUT
    head_timeout: float = HEAD_TIMEOUT
    body_timeout: float = BODY_TIMEOUT


async def serve_app(
    app: ASGIApp,
    address: tuple[str, int],
    *,
    limits: Limits = Limits(),
    metrics: HttpMetrics | None = None,
    task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` on ``address`` (port 0 picks a free port) until cancelled; ``task_status``
    gets the bound address once connections are accepted. An app with a ``direct`` attribute
    (a :data:`~pipeline.http_exchange.Direct`) is asked first for each request's answer."""
    listener = await listen(address)
    server = Server(app, listener.socket.getsockname()[:2], limits, metrics)
    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, server.serve_connection, [listener])
        nursery.start_soon(server.close_idle)
        task_status.started(server.address)


async def listen(address: tuple[str, int]) -> trio.SocketListener:
    """A listener on ``address``, its error naming it."""
    host, port = address
    try:
        listeners = await trio.open_tcp_listeners(port, host=host)
    except OSError as exc:
        raise OSError(exc.errno, f"HTTP on {host}:{port}: {exc.strerror}") from exc
    return listeners[0]


@dataclass(slots=True)
class Server:
    """Connections served, each until its client is done: accepted by :func:`serve_app`, or handed
    over by another process (:mod:`pipeline.backend.front`) with what it read of them already."""

    app: ASGIApp
    address: tuple[str, int]
    limits: Limits
    metrics: HttpMetrics | None
    open: set[_Connection] = field(default_factory=set)
    #: the responses counter's child by status (``labels()`` costs more than the increment)
    counted: dict[int, Any] = field(default_factory=dict)
    direct: Direct | None = None

    def __post_init__(self) -> None:
        self.direct = getattr(self.app, "direct", None)

    @property
    def connections(self) -> int:
        return len(self.open)

    async def serve_connection(self, stream: trio.SocketStream, received: bytes = b"") -> None:
        """Serve ``stream``; ``received``: its first bytes, read by whoever handed it over."""
        connection = _Connection(self.app, self.address, self.limits, self.metrics, stream, self.counted, self.direct)
        if received:
            connection.wire.receive_data(received)
        over_limit = self.connections >= self.limits.max_connections and not self._shed_one()
        self.open.add(connection)
        if self.metrics is not None:
            self.metrics.connections.inc()
        try:
            with connection.scope:
                await connection.run(over_limit=over_limit)
        except Exception:  # a bug of ours in one connection must not stop the server and the daemon with it
            connection.count_error("internal")
            log.exception("HTTP connection failed", peer=connection.peer)
        finally:
            self.open.discard(connection)
            if self.metrics is not None:
                self.metrics.connections.dec()
            await connection.close()

    async def close_idle(self) -> None:
        """Close the keep-alive connections idle for ``keep_alive_timeout``, give or take a quarter
        of it: one timer for every connection, rather than a timer (a cancel scope, about 8 µs,
        and a trip through trio's socket wrappers) around each wait for the next request."""
        timeout = self.limits.keep_alive_timeout
        while True:
            await trio.sleep(max(timeout / 4, 0.01))
            now = trio.current_time()
            for connection in self.open:
                if connection.phase == "idle" and now - connection.since >= timeout:
                    connection.scope.cancel()

    def _shed_one(self) -> bool:
        """Make room for a new connection by closing one that serves nobody: idle between requests
        first, else the one longest on an unfinished head. A request being served is never shed."""
        idle = [c for c in self.open if c.phase == "idle" and not c.scope.cancel_called]
        slow = [c for c in self.open if c.phase == "head" and not c.scope.cancel_called]
        victim = min(idle or slow, key=lambda c: c.since, default=None)
        if victim is None:
            return False
        victim.count_error(f"shed_{victim.phase}")
        log.debug("HTTP connection shed for a new one", peer=victim.peer, phase=victim.phase)
        victim.scope.cancel()
        return True


class _Connection:
    """One client connection: requests one after the other, each handed to the app."""

    def __init__(
        self, app: ASGIApp, server: tuple[str, int], limits: Limits, metrics: HttpMetrics | None,
        stream: trio.SocketStream, counted: dict[int, Any] | None = None, direct: Direct | None = None,
    ) -> None:  # fmt: skip
        self.app = app
        self.direct = direct
        self.server = server
        self.limits = limits
        self.metrics = metrics
        self.counted = {} if counted is None else counted
        self.stream = stream
        self.fd = stream.socket.fileno()
        #: requests read without waiting since the connection last yielded to the others
        self.unyielded = 0
        self.client = _peer_of(stream)
        self.peer = "{}:{}".format(*self.client) if self.client else "?"
        self.wire = wire.ServerConnection(MAX_HEAD_BYTES)
        self.refused = False
        self.method = b""  # of the request under way: a HEAD request's answer has no body, refusals included
        #: the body of the request under way: bytes read, and whether all of it
        self.body_read = 0
        self.body_done = False
        #: what the connection is doing, for shedding: "idle" (awaiting a request), "head" (reading one), "busy"
        self.phase = "idle"
        self.since = trio.current_time()
        #: when the head or body being read must be complete, and which ("head", "body": the
        #: refusal is made only when it is late, not for every request)
        self.deadline = math.inf
        self.late: str | None = None
        #: cancelled to shed the connection; close() runs outside it
        self.scope = trio.CancelScope()

    async def run(self, *, over_limit: bool = False) -> None:
        """Serve requests until the client is done; ``over_limit``: answer the first one 503 and close."""
        try:
            while (request := await self._next_request()) is not None:
                self.method = request.method
                if over_limit:
                    raise Refused("too_many_connections", 503, "too many connections; retry shortly")
                self.body_read, self.body_done = 0, False
                check_framing(request, self.limits.max_body)
                taken = None if self.direct is None else self.direct(request.method, request.target,
                                                                      request.headers, self.client)  # fmt: skip
                if taken is None:
                    exchange = Exchange(self, request)
                    await exchange.run()
                    if not exchange.complete:
                        return
                else:
                    await self._answer_directly(request, taken)
                if not await self._finish_request():
                    return
                self.wire.start_next_cycle()
                self.method = b""
                self.phase, self.since = "idle", trio.current_time()
        except Refused as refused:
            self.count_error(refused.reason)
            log.info("HTTP request refused", peer=self.peer, status=refused.status, error=mask_secrets(str(refused)))
            self.refused = True
            await self._answer_refusal(refused)
        except PeerGone as gone:
            self.count_error(gone.reason)
            log.debug("HTTP client gone", peer=self.peer, reason=gone.reason)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.count_error("disconnect")

    async def _next_request(self) -> wire.Request | None:
        """The next request's head; None when the client closes (one idle too long is cancelled:
        see :meth:`Server.close_idle`)."""
        while True:
            event = self.next_event()
            if event is wire.NEED_DATA:
                if self.wire.head_begun:
                    self._head_begun()
                    await self.read_more()  # a head has begun: the read timeout and head deadline apply
                    continue
                data = await self._read_waiting()
                if data is None:
                    # Idle: no timer here; Server.close_idle closes the connection (quietly, as
                    # every server does) once it has idled for the keep-alive timeout.
                    await trio.lowlevel.wait_readable(self.fd)
                    if (data := self._read_now()) is None:
                        continue
                self.wire.receive_data(data)
                self._head_begun()
                continue
            self.set_deadline(math.inf, None)
            if isinstance(event, wire.Request):
                self.phase = "busy"
                return event
            return None  # ConnectionClosed

    async def _read_waiting(self) -> bytes | None:
        """What the client has sent already, read without waiting; None when nothing is there.
        Under load the next request is often there when the last answer is out: read at once, it
        costs no timer and no round through trio's scheduler (trio's ``receive_some`` costs both,
        about 10 % of an empty app's request). Every ``YIELD_EVERY`` such reads the connection
        yields, so that a client sending without pause cannot hold the event loop."""
        data = self._read_now()
        if data is None:
            return None
        self.unyielded += 1
        if self.unyielded >= YIELD_EVERY:
            self.unyielded = 0
            await trio.lowlevel.checkpoint()
        return data

    def _read_now(self) -> bytes | None:
        try:
            return os.read(self.fd, READ_SIZE)
        except BlockingIOError:
            return None
        except OSError as exc:
            raise trio.BrokenResourceError(str(exc)) from exc

    def _head_begun(self) -> None:
        if self.phase == "idle":
            self.phase, self.since = "head", trio.current_time()
            self.set_deadline(self.since + self.limits.head_timeout, "head")

    def set_deadline(self, deadline: float, late: str | None) -> None:
        self.deadline, self.late = deadline, late

    def late_refusal(self, late: str) -> Refused:
        seconds = self.limits.head_timeout if late == "head" else self.limits.body_timeout
        return Refused(f"{late}_timeout", 408, f"request {late} not complete within {seconds:g} s")

    async def _answer_directly(self, request: wire.Request, taken: Answer | BodyTaker) -> None:
        """Answer with the app's direct route: at once, or once its body is read whole."""
        if not isinstance(taken, tuple):
            body = await self.read_body()
            try:
                taken = await taken(body)
            except (Refused, PeerGone):
                raise
            except Exception as exc:  # as Exchange.run answers an app that fails
                log.exception("HTTP app failed", peer=self.peer, method=request.method.decode(),
                              target=mask_secrets(request.target.decode("latin-1")))  # fmt: skip
                raise Refused("app_error", 500, "internal server error") from exc
        status, headers, body = taken
        await self.write(self.wire.respond(status, headers, body))
        self.count_response(status)

    async def read_body(self) -> bytes:
        """The request's body, whole (within ``max_body``: 413 beyond)."""
        body, more = await self.read_body_part()
        if not more:
            return body
        chunks = [body]
        while more:
            body, more = await self.read_body_part()
            chunks.append(body)
        return b"".join(chunks)

    async def read_body_part(self) -> tuple[bytes, bool]:
        """What has come of the request's body, and whether more is to come: at least one byte
        unless it is the end."""
        if self.wire.they_are_waiting_for_100_continue:
            await self.send(wire.InformationalResponse(status_code=100, headers=[]))
        if self.late is None:  # the first read: the body's deadline starts
            self.set_deadline(trio.current_time() + self.limits.body_timeout, "body")
        chunks: list[bytes] = []
        while True:
            event = self.next_event()
            kind = type(event)
            if event is wire.NEED_DATA:
                if chunks:
                    return b"".join(chunks), True
                await self.read_more()
            elif kind is wire.Data:
                self._count_body(len(event.data))
                chunks.append(event.data)
            elif kind is wire.EndOfMessage:
                self.body_done = True
                self.set_deadline(math.inf, None)
                return b"".join(chunks), False
            else:
                raise PeerGone("disconnect")

    def _count_body(self, size: int) -> None:
        self.body_read += size
        limit = self.limits.max_body
        if self.body_read > limit:
            raise Refused("body_too_large", 413, f"body exceeds {limit} bytes")

    async def _finish_request(self) -> bool:
        """Whether the connection can carry another request. The app may answer without reading
        the body (a 401, say): the rest is read so that the next request starts at its head,
        unless the client waits for a 100 Continue it will never get."""
        if self.wire.their_state is wire.SEND_BODY and not self.wire.they_are_waiting_for_100_continue:
            while not self.body_done:
                await self.read_body_part()
        return self.wire.our_state is wire.DONE and self.wire.their_state is wire.DONE

    def next_event(self) -> Any:
        try:
            return self.wire.next_event()
        except wire.ProtocolError as exc:
            reason = "head_too_large" if exc.error_status_hint == 431 else "bad_request"
            raise Refused(reason, exc.error_status_hint, str(exc)) from exc

    async def read_more(self) -> None:
        with trio.move_on_at(min(trio.current_time() + self.limits.read_timeout, self.deadline)):
            self.wire.receive_data(await self.stream.receive_some(READ_SIZE))
            return
        if self.late is not None and trio.current_time() >= self.deadline:
            raise self.late_refusal(self.late)
        raise PeerGone("timeout")

    async def send(self, *events: Any) -> None:
        await self.write(b"".join([self.wire.send(event) for event in events]))

    async def write(self, data: bytes) -> None:
        # Written at once if the socket takes it all, as it nearly always does (an answer is small):
        # trio's send costs a timer and a trip through its scheduler, about 5 % of a request.
        try:
            sent = os.write(self.fd, data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            raise trio.BrokenResourceError(str(exc)) from exc
        if sent == len(data):
            return
        with trio.move_on_after(self.limits.read_timeout):
            await self.stream.send_all(data[sent:])
            return
        raise PeerGone("timeout")

    async def _answer_refusal(self, refused: Refused) -> None:
        if self.wire.our_state not in (wire.IDLE, wire.SEND_RESPONSE):
            return  # a response is under way: all that is left is to close
        body = json.dumps(error_body(refused.status, str(refused))).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body)),
                   (b"connection", b"close")]  # fmt: skip
        if refused.status == 503:
            headers.append((b"retry-after", b"1"))
        try:
            answer = [wire.Data(data=body)] if self.method != b"HEAD" else []
            await self.send(response(refused.status, headers), *answer, wire.EndOfMessage())
        except (trio.BrokenResourceError, trio.ClosedResourceError, PeerGone):
            return
        self.count_response(refused.status)

    async def close(self) -> None:
        try:
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, trio.BusyResourceError):
                await self.stream.send_eof()
                if self.refused:
                    await self._linger()
        finally:
            await self.stream.aclose()  # closes the socket even when cancelled

    async def _linger(self) -> None:
        dropped = 0
        with trio.move_on_after(LINGER_SECONDS):
            while dropped < LINGER_BYTES and (data := await self.stream.receive_some(READ_SIZE)):
                dropped += len(data)

    def count_response(self, status: int) -> None:
        if self.metrics is not None:
            counter = self.counted.get(status)
            if counter is None:
                counter = self.counted[status] = self.metrics.responses.labels(str(status))
            counter.inc()

    def count_error(self, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.errors.labels(reason).inc()


def _peer_of(stream: trio.SocketStream) -> tuple[str, int] | None:
    try:
        host, port = stream.socket.getpeername()[:2]
    except OSError:
        return None
    return host, port

"""The backend's front process: the events API's most common request, taken on a core of its own.

Why: one interpreter took every result of the events API (its HTTP, its decoding, its journal
record, its answer) and also merged its state, packed its row and stored it; with four busy
clients it was the one thing busy, on one of the machine's cores (issue 19). The front
accepts the API's connections and answers ``POST /api/core/v2/namespaces/{ns}/events`` in its
plainest form itself: an event with no id of its own, a body framed by ``Content-Length``, a
credential the backend said yes to. It decodes and checks the event as the API does
(:func:`pipeline.backend.api.events.prepare_event`), journals its record in its own segment
files (``<data>/intake/front/``), gives the record to the backend over the link
(:mod:`pipeline.backend.front_link`) and only then answers 201: the same promise and the same
bytes as the backend's own (:mod:`pipeline.backend.journal`).

Everything else it hands over, untouched, to the backend with its connection: another route,
a refusal to make (400, 401, 413 ...), a chunked or large body, ``Expect``, a warning to add,
a pipeline full, a slow client. The backend serves that connection from there on, with every
limit and answer of its own. What the front answers is therefore always what the backend
would have; what it does not know, it does not answer.

A credential is asked about once a second at most (per credential, namespace and client
address), so a deleted key or namespace is refused by the front within a second.
"""

from __future__ import annotations

import array
import json
import os
import re
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import ormsgpack
import trio

from pipeline import http_wire as wire
from pipeline.backend import front_link as link
from pipeline.backend.api.events import RECORD_VERSION, prepare_event, small_body
from pipeline.backend.eventd import Replays
from pipeline.backend.journal import BUSY_WAIT, MAX_PENDING, ROTATE_IDLE_BYTES, SEGMENT_BYTES
from pipeline.backend.journal_files import append, framed, open_segment
from pipeline.errors import ValidationError
from pipeline.http import MAX_HEAD_BYTES, READ_SIZE
from pipeline.logs import get_logger
from pipeline.wire.limits import MAX_EVENT_BYTES

log = get_logger("backend.front")

_SUBMIT = re.compile(rb"/api/core/v2/namespaces/([^/?%]+)/events")
_CREATED = [(b"content-length", b"0")]
#: Bodies the front takes, at most: larger ones are rare, and go to the backend.
BODY_BYTES = 64 * 1024
#: Seconds a yes to a credential is kept.
ALLOWED_SECONDS = 1.0
ALLOWED_KEPT = 10_000
#: Seconds the first frame for the backend waits for others, and the frames that go at once.
LINK_LINGER = 0.002
LINK_BATCH = 64
#: Seconds between the front's figures sent to the backend.
FIGURES_EVERY = 1.0


@dataclass(slots=True, frozen=True)
class FrontSettings:
    """What the backend tells its front process (as JSON on its command line)."""

    journal: str  # the directory of its segments
    first_segment: int
    max_body: int
    keep_alive_timeout: float
    head_timeout: float
    max_connections: int
    log_level: str
    #: the listener's, the link's and the hand-over socket's descriptors
    fds: tuple[int, int, int]


@dataclass(slots=True, eq=False)
class _Connection:
    stream: trio.SocketStream
    #: the client's address, as the backend's throttling counts it
    source: str
    #: read and not yet answered: the head and body of the request under way
    received: bytes = b""
    #: "idle" (between requests), "head" (a request begun), "answer" (its 201 being written)
    phase: str = "idle"
    since: float = 0.0
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)


class Front:
    def __init__(self, settings: FrontSettings, link_socket: trio.socket.SocketType,
                 handover: trio.socket.SocketType) -> None:  # fmt: skip
        self.settings = settings
        self._link = trio.SocketStream(link_socket)
        self._link_fd = link_socket.fileno()
        #: frames not yet sent: gathered for :data:`LINK_LINGER`, so that one write (and one
        #: wake-up of the backend) carries the records of many requests
        self._outgoing: list[bytes] = []
        self._flush_now = trio.Event()
        self._wake_writer = trio.Event()
        self._roomy = trio.Event()  # set when fewer than MAX_PENDING are pending
        self._handover = handover
        self._handover_lock = trio.StrictFIFOLock()
        #: records given to the backend and not yet done with
        self.pending = 0
        self._number = settings.first_segment - 1
        self._fd = -1
        self._size = 0
        self._open_next()
        self._questions: dict[int, tuple[trio.Event, list[bool]]] = {}
        self._question = 0
        self._allowed: dict[tuple[str, str, str], float] = {}
        self.open: set[_Connection] = set()

    # -- the journal ---------------------------------------------------------------------------

    def _open_next(self) -> None:
        self._number += 1
        self._fd = open_segment(Path(self.settings.journal) / f"journal-{self._number}.log")
        self._size = 0

    def _seal(self) -> None:
        os.close(self._fd)
        sealed = self._number
        self._open_next()
        self._send(link.sealed_frame(sealed))

    def _journal(self, record: bytes) -> None:
        """Append ``record`` and give it to the backend (raises OSError: nothing journaled).
        Answered once appended: the backend reads what the front did not send from the segment
        if the front ends (:meth:`pipeline.backend.journal.IntakeJournal.recover_front`)."""
        data = framed(record)
        append(self._fd, data, self._size)
        self._size += len(data)
        self.pending += 1
        self._send(link.record_frame(self._number, record))
        if self._size >= SEGMENT_BYTES:
            self._seal()

    def _send(self, frame: bytes, *, now: bool = False) -> None:
        if not self._outgoing:
            self._wake_writer.set()
        self._outgoing.append(frame)
        if now or len(self._outgoing) >= LINK_BATCH:
            self._flush_now.set()

    async def _write_link(self) -> None:
        """Send what waits, :data:`LINK_LINGER` after its first frame (at once when asked)."""
        while True:
            await self._wake_writer.wait()
            with trio.move_on_after(LINK_LINGER):
                await self._flush_now.wait()
            frames, self._outgoing = self._outgoing, []
            self._wake_writer, self._flush_now = trio.Event(), trio.Event()
            data = b"".join(frames)
            try:
                sent = os.write(self._link_fd, data)
            except BlockingIOError:
                sent = 0
            except OSError:  # the backend is gone: the link's reader ends the front
                return
            if sent < len(data):
                await self._link.send_all(data[sent:])

    # -- the backend's words -------------------------------------------------------------------

    async def _listen(self) -> None:
        """The backend's counts and answers, until it closes the link (it stopped: so does this)."""
        frames = link.Frames()
        while data := await self._link.receive_some(READ_SIZE):
            for kind, body in frames.feed(data):
                if kind == link.DONE:
                    self.pending -= link.count_of(body)
                    if self.pending < MAX_PENDING:
                        self._roomy.set()
                        self._roomy = trio.Event()
                    if self.pending == 0 and self._size >= ROTATE_IDLE_BYTES:
                        self._seal()
                elif kind == link.FLUSH:
                    self._send(link.flushed_frame(link.count_of(body)), now=True)
                elif kind == link.ANSWER:
                    question, verdict = link.answer_of(body)
                    if (waiting := self._questions.pop(question, None)) is not None:
                        waiting[1].append(verdict)
                        waiting[0].set()

    async def _room(self) -> bool:
        """Wait up to :data:`BUSY_WAIT` for fewer than :data:`MAX_PENDING` events waiting to be
        stored, as the backend's journal does."""
        with trio.move_on_after(BUSY_WAIT):
            while self.pending >= MAX_PENDING:
                await self._roomy.wait()
            return True
        return False

    async def _allowed_to(self, authorization: str, namespace: str, source: str) -> bool:
        key = (authorization, namespace, source)
        now = trio.current_time()
        if self._allowed.get(key, 0.0) > now:
            return True
        self._question += 1
        done, verdict = trio.Event(), list[bool]()
        self._questions[self._question] = (done, verdict)
        self._send(link.ask_frame(self._question, authorization, namespace, source), now=True)
        await done.wait()
        if verdict[0]:
            if len(self._allowed) >= ALLOWED_KEPT:
                self._allowed.clear()
            self._allowed[key] = now + ALLOWED_SECONDS
        return verdict[0]

    async def _tell_figures(self) -> None:
        while True:
            await trio.sleep(FIGURES_EVERY)
            self._send(link.figures_frame({"connections": len(self.open), "pending": self.pending}))

    # -- connections ---------------------------------------------------------------------------

    async def run(self, listener: trio.SocketListener) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._write_link)
            nursery.start_soon(self._tell_figures)
            nursery.start_soon(self._sweep)
            nursery.start_soon(trio.serve_listeners, self._serve, [listener])
            await self._listen()
            nursery.cancel_scope.cancel()

    async def _sweep(self) -> None:
        """Idle keep-alive connections closed, slow bodies handed over (the backend refuses them):
        one timer for every connection, as :meth:`pipeline.http.Server.close_idle`."""
        settings = self.settings
        while True:
            await trio.sleep(min(settings.keep_alive_timeout, settings.head_timeout) / 4)
            now = trio.current_time()
            for connection in self.open:
                limit = settings.keep_alive_timeout if connection.phase == "idle" else settings.head_timeout
                if now - connection.since >= limit:
                    connection.scope.cancel()

    async def _serve(self, stream: trio.SocketStream) -> None:
        try:
            host = stream.socket.getpeername()[0]
        except OSError:
            await stream.aclose()
            return
        connection = _Connection(stream, host, since=trio.current_time())
        if len(self.open) >= self.settings.max_connections:  # the backend sheds or refuses
            await self._hand_over(connection, "connections")
            return
        self.open.add(connection)
        handed = False
        try:
            with connection.scope:
                handed = await self._requests(connection)
            if connection.scope.cancelled_caught and connection.phase == "head":
                handed = await self._hand_over(connection, "slow")
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        finally:
            self.open.discard(connection)
            if not handed:
                await stream.aclose()

    async def _requests(self, connection: _Connection) -> bool:
        """Answer the requests the front takes until the client is done (False), or one is for
        the backend: True once the connection is handed over."""
        stream = connection.stream
        fd = stream.socket.fileno()
        while True:
            end = connection.received.find(b"\r\n\r\n")
            while end < 0:
                if connection.received:  # a head in pieces (a real client sends it in one): the
                    return await self._hand_over(connection, "head")  # backend's timers judge it
                if not await _read(connection, fd):
                    return False
                end = connection.received.find(b"\r\n\r\n")
            taken = _taken(connection.received, end, self.settings.max_body)
            if taken is None:
                return await self._hand_over(connection, "request")
            parser, namespace, authorization, total = taken
            while len(connection.received) < total:
                if not await _read(connection, fd):
                    return False
            parser.receive_data(connection.received[end + 4 : total])
            answer = await self._submit(parser, namespace, authorization, connection.source)
            if isinstance(answer, str):
                return await self._hand_over(connection, answer)
            connection.received = connection.received[total:]
            connection.phase = "answer"  # journaled: a client too slow to take its 201 is closed, not handed over
            await _write(connection, fd, answer)
            if parser.our_state is not wire.DONE:  # Connection: close, HTTP/1.0
                return False
            connection.phase = "head" if connection.received else "idle"
            connection.since = trio.current_time()

    async def _submit(
        self, parser: wire.ServerConnection, namespace: str, authorization: str, source: str
    ) -> bytes | str:
        """The 201 for a request taken, journaled; or why the backend is to answer it."""
        body = _body_of(parser)
        if body is None:
            return "request"
        if self.pending >= MAX_PENDING and not await self._room():
            return "busy"  # the backend waits too, then answers 503
        if not await self._allowed_to(authorization, namespace, source):
            return "credentials"
        now = time.time()
        ignored: list[str] = []
        try:
            event, replays = prepare_event(body, namespace, now=now, ignored=ignored)
        except ValidationError:
            return "invalid"
        if ignored or replays is not Replays.NONE:
            return "event"  # a warning to add, an id of the client's: stored before the answer
        if not small_body(len(body)) and len(event.to_msgpack()) > MAX_EVENT_BYTES:
            return "invalid"
        record = ormsgpack.packb([RECORD_VERSION, body, namespace, None, None, event.id, now])
        try:
            self._journal(record)
        except OSError as exc:
            log.error("front journal not written; the backend takes the request", error=exc)
            return "journal"
        return parser.respond(201, _CREATED, b"")

    async def _hand_over(self, connection: _Connection, reason: str) -> bool:
        """Give the connection to the backend with what was read of it: True, it is the backend's."""
        sock = connection.stream.socket
        if len(connection.received) > link.HANDOVER_BYTES:  # more than a datagram holds: pipelined requests
            log.warning("connection closed: too much read ahead to hand over", peer=connection.source)
            return False
        ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [sock.fileno()]))]
        with trio.CancelScope(shield=True):
            async with self._handover_lock:
                await self._handover.sendmsg([link.handover_datagram(reason, connection.received)], ancillary)
        sock.close()  # the backend holds it now
        return True


async def _read(connection: _Connection, fd: int) -> bool:
    """Add what the client sent to what was received: at once if it is there (no trip through
    trio's scheduler), else once it comes; False at its end."""
    try:
        data = os.read(fd, READ_SIZE)
    except BlockingIOError:
        data = await connection.stream.receive_some(READ_SIZE)
    if data and not connection.received:
        connection.phase, connection.since = "head", trio.current_time()
    connection.received += data
    return bool(data)


async def _write(connection: _Connection, fd: int, data: bytes) -> None:
    """Send an answer: at once if the socket takes it, as it nearly always does (see
    :meth:`pipeline.http._Connection.write`)."""
    try:
        sent = os.write(fd, data)
    except BlockingIOError:
        sent = 0
    if sent < len(data):
        await connection.stream.send_all(data[sent:])


def _taken(received: bytes, end: int, max_body: int) -> tuple[wire.ServerConnection, str, str, int] | None:
    """The parser (fed the head), namespace, credential and length of a request the front takes
    (its head whole in ``received``, ending at ``end``), or None: the backend's."""
    if not received.startswith(b"POST "):
        return None
    parser = wire.ServerConnection(MAX_HEAD_BYTES)
    head = received[: end + 4]
    try:
        parser.receive_data(head)
        request = parser.next_event()
    except wire.ProtocolError:
        return None
    if not isinstance(request, wire.Request) or (match := _SUBMIT.fullmatch(request.target)) is None:
        return None
    length: int | None = None
    authorization = ""
    for name, value in request.headers:
        if name == b"content-length":
            length = int(value)
        elif name in (b"transfer-encoding", b"expect", b"upgrade"):
            return None
        elif name == b"authorization":
            authorization = value.decode("latin-1")
    if length is None or length > min(max_body, BODY_BYTES) or not authorization:
        return None
    return parser, match[1].decode("latin-1"), authorization, len(head) + length


def _body_of(parser: wire.ServerConnection) -> bytes | None:
    chunks = []
    while True:
        try:
            event = parser.next_event()
        except wire.ProtocolError:
            return None
        if isinstance(event, wire.Data):
            chunks.append(event.data)
        elif isinstance(event, wire.EndOfMessage):
            return b"".join(chunks)
        else:
            return None


def main(argv: list[str]) -> None:
    """``python -m pipeline.backend.front <settings JSON>``, with the descriptors the settings
    name given by the backend."""
    import signal

    from pipeline import logs

    # The backend stops it, by closing the link: a Ctrl-C or TERM meant for the backend's group
    # must not cut a request between its journal record and the record's hand-over.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    spec = json.loads(argv[0])
    settings = FrontSettings(**{**spec, "fds": tuple(spec["fds"])})
    logs.configure(settings.log_level)

    async def run() -> None:
        listen_fd, link_fd, handover_fd = settings.fds
        listener = trio.SocketListener(trio.socket.from_stdlib_socket(socket.socket(fileno=listen_fd)))
        link_socket = trio.socket.from_stdlib_socket(socket.socket(fileno=link_fd))
        handover = trio.socket.from_stdlib_socket(socket.socket(fileno=handover_fd))
        front = Front(settings, link_socket, handover)
        log.info("front process started", pid=os.getpid(), segment=settings.first_segment)
        await front.run(listener)

    trio.run(run)


if __name__ == "__main__":
    main(sys.argv[1:])

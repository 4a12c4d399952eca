"""The backend's end of its front process (:mod:`pipeline.backend.front`).

The backend binds the API's address, starts the front with the listener and two socket pairs
(:mod:`pipeline.backend.front_link`), and from then on: takes each event the front journaled
into its own journal (:meth:`pipeline.backend.journal.IntakeJournal.take_front`) as if it had
taken it itself, tells the front how many of them are done with, answers its questions about
credentials, and serves every connection the front hands over with the bytes it read of them.

Before a request of its own is served, the backend reads what the link holds already
(:meth:`FrontProcess.catch_up`): the front gives a record to the link before it answers 201,
so a read that follows a 201, on any connection, waits for that event as it would for one the
backend journaled (read-your-writes).

If the front ends unasked, the events it gave are kept (the link is read to its end and its
segments are sealed), the end is logged and counted, the backend accepts the connections itself
for :data:`RESTART_WAIT`, and starts another front. When the backend stops, it closes the link:
the front ends with it.
"""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass

import trio
from prometheus_client import CollectorRegistry, Counter, Gauge

from pipeline.backend import front_link as link
from pipeline.backend.api.events import event_of_record
from pipeline.backend.front import FrontSettings
from pipeline.backend.journal import IntakeJournal
from pipeline.data_lock import DataDirLock
from pipeline.http import Limits, Server
from pipeline.logs import get_logger
from pipeline.metrics import BackendMetrics

log = get_logger("backend.front")

#: Seconds the backend serves the API itself after its front ended, before it starts another.
RESTART_WAIT = 1.0
#: Seconds before an accept that failed (no descriptor left) is tried again.
ACCEPT_RETRY = 0.1
#: Seconds the front has to end once told to, before it is killed.
STOP_WAIT = 5.0
#: Answers to the front waiting to be sent, at most (each a question of one of its connections).
ANSWERS_WAITING = 10_000
#: A question about a credential, namespace and client address: may it post events?
MayTake = Callable[[str, str, str], bool]


@dataclass(slots=True, frozen=True)
class FrontMetrics:
    connections: Gauge
    pending: Gauge
    handed_over: Counter
    answered: Counter
    ended: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> FrontMetrics:
        return cls(
            connections=Gauge("pipeline_front_connections", "Connections the front process serves", registry=registry),
            pending=Gauge("pipeline_front_pending", "Events the front process journaled and the backend has not "
                          "stored yet, as the front counts them", registry=registry),
            handed_over=Counter("pipeline_front_handed_over", "Connections the front process handed to the backend, "
                                "by why (request: a request it does not take)", ["reason"], registry=registry),
            answered=Counter("pipeline_front_answered", "Events the front process journaled and answered 201",
                             registry=registry),
            ended=Counter("pipeline_front_ended", "Times the front process ended unasked (another is started)",
                          registry=registry),
        )  # fmt: skip


class FrontProcess:
    def __init__(
        self, journal: IntakeJournal, may_take: MayTake, metrics: BackendMetrics, front_metrics: FrontMetrics,
        limits: Limits, data_lock: DataDirLock | None = None,
    ) -> None:  # fmt: skip
        self.journal = journal
        #: held by the front too: a new backend on the data directory waits for the front to end
        #: (else it could replay the front's segments while the front still appends to them)
        self.data_lock = data_lock
        self.may_take = may_take
        self.metrics = metrics
        self.front_metrics = front_metrics
        self.limits = limits
        self._link: socket.socket | None = None
        self._frames = link.Frames()
        self._answers_send, self._answers_receive = trio.open_memory_channel[bytes](ANSWERS_WAITING)
        self._write_lock = trio.Lock()
        #: the catch-ups asked of the front, and the last it answered
        self._flushes = self._flushed = 0
        self._flushed_event = trio.Event()
        self._received = metrics.events_received.labels("api")
        self._created = metrics.http.responses.labels("201")

    async def serve(
        self, server: Server, listener: trio.SocketListener,
        task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
    ) -> None:  # fmt: skip
        """Serve the API through fronts, one after the other, until cancelled."""
        async with trio.open_nursery() as connections:  # the connections handed over, served here
            connections.start_soon(server.close_idle)
            task_status.started(server.address)
            while True:
                await self._run_front(server, listener, connections)
                self.front_metrics.ended.inc()
                with trio.move_on_after(RESTART_WAIT):  # meanwhile, the backend takes the connections
                    while True:
                        try:
                            stream = await listener.accept()
                        except OSError as exc:  # out of descriptors or memory: as trio.serve_listeners does
                            log.error("API connection not accepted", error=exc)
                            await trio.sleep(ACCEPT_RETRY)
                            continue
                        connections.start_soon(server.serve_connection, stream)

    async def _run_front(self, server: Server, listener: trio.SocketListener, connections: trio.Nursery) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        hand_ours, hand_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        listen_fd = listener.socket.fileno()
        settings = FrontSettings(
            journal=str(self.journal.front_directory), first_segment=self.journal.next_front_segment,
            max_body=self.limits.max_body, keep_alive_timeout=self.limits.keep_alive_timeout,
            head_timeout=self.limits.head_timeout, max_connections=self.limits.max_connections,
            log_level=_log_level(), fds=(listen_fd, theirs.fileno(), hand_theirs.fileno()),
        )  # fmt: skip
        argv = [sys.executable, "-m", "pipeline.backend.front", json.dumps(asdict(settings))]
        inherited: tuple[int, ...] = settings.fds
        if self.data_lock is not None and self.data_lock.fd is not None:
            inherited += (self.data_lock.fd,)
        try:
            process = await trio.lowlevel.open_process(argv, pass_fds=inherited, stdin=subprocess.DEVNULL)
        finally:
            theirs.close()
            hand_theirs.close()
        ours.setblocking(False)
        self._link, self._frames = ours, link.Frames()
        handover = trio.socket.from_stdlib_socket(hand_ours)
        try:
            async with trio.open_nursery() as nursery:
                handed_over = trio.Event()
                nursery.start_soon(self._take_connections, handover, server, connections, handed_over)
                nursery.start_soon(self._tell_done)
                nursery.start_soon(self._send_answers)
                await self._listen()  # until the front ends (or says what the backend cannot read)
                self._close_link(ours)
                with trio.move_on_after(STOP_WAIT):  # the connections it handed over before it ended: served
                    await handed_over.wait()
                nursery.cancel_scope.cancel()
        finally:
            self._close_link(ours)
            handover.close()
            with trio.CancelScope(shield=True):
                await _ended(process)
            # Once it has ended, and only then: it appends no more to the segments read here.
            recovered = self.journal.recover_front()
            self._flushed = self._flushes
            self._flushed_event.set()
            self.front_metrics.connections.set(0)
        log.error("front process ended; the backend serves the API until another starts", pid=process.pid,
                  exit_code=process.returncode, restart_in=RESTART_WAIT, recovered=recovered)  # fmt: skip

    # -- the link ------------------------------------------------------------------------------

    async def _listen(self) -> None:
        assert self._link is not None
        while True:
            await trio.lowlevel.wait_readable(self._link)
            if self._read():
                return

    async def catch_up(self) -> None:
        """Once the backend holds every event the front answered before this call: asked before
        the backend serves a request of its own (a read must see what was answered before it)."""
        if self._link is None:
            return
        self._flushes += 1
        asked = self._flushes
        await self._write(link.flush_frame(asked))
        while self._flushed < asked:
            await self._flushed_event.wait()

    def _read(self) -> bool:
        """Take what the link holds now (no wait); True at its end."""
        sock = self._link
        if sock is None:
            return False
        while True:
            try:
                data = sock.recv(1024 * 1024)
            except BlockingIOError:
                return False
            except OSError:
                return True
            if not data:
                return True
            try:
                for kind, body in self._frames.feed(data):
                    self._take(kind, body)
            except Exception:  # a frame not understood: a bug of ours, which must not stop the backend
                log.exception("front process's frame not understood; its link is closed and another is started")
                return True

    def _take(self, kind: int, body: bytes) -> None:
        if kind == link.RECORD:
            number, record = link.segment_of(body)
            self._received.inc()
            self._created.inc()
            self.front_metrics.answered.inc()
            try:
                event = event_of_record(record)
            except ValueError as exc:  # the front took it as this program does: a bug, said loudly
                self.journal.metrics.undecodable.inc()
                log.error("front's journal record does not decode; dropped", error=exc)
                self.journal.front_record_done()
                return
            self.journal.take_front(event, record, number)
        elif kind == link.SEALED:
            self.journal.seal_front(link.count_of(body))
        elif kind == link.ASK:
            question, authorization, namespace, source = link.question_of(body)
            verdict = self.may_take(authorization, namespace, source)
            try:
                self._answers_send.send_nowait(link.answer_frame(question, verdict))
            except trio.WouldBlock:  # more than the front's connections can ask: its request waits out
                # the head timeout, then comes to the backend (handed over), which answers it itself
                log.error("front's question not answered: too many waiting", waiting=ANSWERS_WAITING)
        elif kind == link.FLUSHED:
            self._flushed = max(self._flushed, link.count_of(body))
            self._flushed_event.set()
            self._flushed_event = trio.Event()
        elif kind == link.FIGURES:
            self._figures_taken(link.figures_of(body))

    def _figures_taken(self, figures: dict[str, int]) -> None:
        self.front_metrics.connections.set(figures.get("connections", 0))
        self.front_metrics.pending.set(figures.get("pending", 0))

    async def _write(self, frame: bytes) -> None:
        async with self._write_lock:  # whole frames, whoever writes
            view = memoryview(frame)
            while view and (sock := self._link) is not None:
                try:
                    view = view[sock.send(view) :]
                except BlockingIOError:
                    try:
                        await trio.lowlevel.wait_writable(sock)
                    except trio.ClosedResourceError:
                        return
                except OSError:  # the front ended: its reader sees it too
                    return

    async def _tell_done(self) -> None:
        while True:
            count = await self.journal.front_done_since()
            await self._write(link.done_frame(count))

    async def _send_answers(self) -> None:
        while True:
            await self._write(await self._answers_receive.receive())

    def _close_link(self, ours: socket.socket) -> None:
        """The front ends at the end of its link (it may have already)."""
        if self._link is None:
            return
        self._link = None
        trio.lowlevel.notify_closing(ours)  # a request's catch-up waiting to write is let go
        ours.close()

    async def _take_connections(
        self, handover: trio.socket.SocketType, server: Server, connections: trio.Nursery, done: trio.Event
    ) -> None:
        """Serve each connection the front hands over, until it has ended (``done`` set then)."""
        try:
            while True:
                data, ancillary, _, _ = await handover.recvmsg(link.DATAGRAM_BYTES, link.ANCILLARY_SPACE,
                                                               socket.MSG_CMSG_CLOEXEC)  # fmt: skip
                fd, reason, received = link.taken_over(data, ancillary)
                if fd is None:
                    if not data:
                        return  # the front ended
                    continue
                self.front_metrics.handed_over.labels(reason).inc()
                stream = trio.SocketStream(trio.socket.from_stdlib_socket(socket.socket(fileno=fd)))
                connections.start_soon(server.serve_connection, stream, received)
        finally:
            done.set()


async def _ended(process: trio.Process) -> None:
    with trio.move_on_after(STOP_WAIT):
        await process.wait()
        return
    log.error("front process did not end; killed", pid=process.pid)
    process.kill()
    await process.wait()


def _log_level() -> str:
    return logging.getLevelName(logging.getLogger("pipeline").getEffectiveLevel()).lower()

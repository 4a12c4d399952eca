"""The ``docker`` source: the Docker Engine's event stream (``GET /events`` over its unix socket)
as change events of the agent's entity, mapped by :mod:`pipeline.core.host.docker`.

It speaks HTTP/1.1 to the socket itself, with h11 (already a dependency) over trio's unix socket,
rather than with the ``docker`` PyPI library: that library is synchronous (requests), so its
endless event stream would hold a thread that trio cannot cancel, and it would bring requests and
urllib3 for one GET of JSON lines. Nor with httpx: its streamed body is a stack of async
generators, and leaving the stream early (a bad line) leaves the inner ones to the garbage
collector, which trio reports; one request with h11 is a few lines with nothing left open.

A reconnect resumes ``since`` the newest event's ``timeNano``: Docker replays what it still
buffers from that instant (its last 256 events), and the events of that second already sent are
skipped by identity, so nothing is sent twice and nothing still buffered is missed. With a
``state_dir`` the resume point survives the agent's restarts too (``docker-events.json``).

A truncated stream, a line that is not a Docker event or one longer than :data:`MAX_LINE`, the
daemon closing the stream, refusing the request or not answering it: each is counted
(``pipeline_agent_docker_stream_errors{reason}``) and logged, and the source raises
:class:`~pipeline.errors.DockerEventsError`, so that the agent restarts it with a backoff.
"""

from __future__ import annotations

import json
import os
import weakref
from dataclasses import dataclass
from pathlib import Path

import h11
import trio
from prometheus_client import CollectorRegistry, Counter

from pipeline.agent.sources.base import Source, SourceContext
from pipeline.core.host.docker import ResumePoint, line_identity, parse_line, to_event
from pipeline.errors import DockerEventsError, ValidationError
from pipeline.logs import get_logger
from pipeline.model import Event

log = get_logger("agent.sources.docker")

STATE_FILE = "docker-events.json"
#: A line longer than this is refused (Docker's events are a few hundred bytes; a container's
#: labels can make one a few KiB).
MAX_LINE = 1024 * 1024
#: The response's head; the stream itself may be silent for hours.
CONNECT_TIMEOUT = 10.0
RECEIVE_BYTES = 65536
#: The body of a refusal kept for the log line.
MAX_REFUSAL = 500


@dataclass(slots=True)
class DockerMetrics:
    events: Counter
    skipped: Counter
    stream_errors: Counter
    state_errors: Counter

    @classmethod
    def of(cls, registry: CollectorRegistry) -> DockerMetrics:
        """The metrics on ``registry``, made once: a source made again (the agent restarting it
        from its factory) counts on."""
        metrics = _METRICS.get(registry)
        if metrics is None:
            metrics = _METRICS[registry] = cls._create(registry)
        return metrics

    @classmethod
    def _create(cls, r: CollectorRegistry) -> DockerMetrics:
        def counter(name: str, text: str, label: str) -> Counter:
            return Counter(f"pipeline_agent_docker_{name}", text, [label], registry=r)

        return cls(
            events=counter("events", "Docker events sent on, by object type", "type"),
            skipped=counter("events_skipped", "Docker events not sent on, by reason (duplicate: replayed after a "
                            "reconnect; bad_line: a bad line replayed)", "reason"),
            stream_errors=counter("stream_errors", "Failures of the Docker event stream (the source restarts)",
                                  "reason"),
            state_errors=counter("state_errors", "Failures to load or save the Docker resume point", "operation"),
        )  # fmt: skip


_METRICS: weakref.WeakKeyDictionary[CollectorRegistry, DockerMetrics] = weakref.WeakKeyDictionary()


class DockerSource:
    """Sends one change event per Docker event; see the module's docstring."""

    name = "docker"

    def __init__(self, context: SourceContext) -> None:
        settings = context.settings
        self._entity = context.entity
        self._socket = settings.docker_socket
        self._state_path = settings.state_dir / STATE_FILE if settings.state_dir is not None else None
        self._metrics = DockerMetrics.of(context.registry)
        #: loaded from the state file on the first run, then kept across runs
        self._resume: ResumePoint | None = None
        self._save_failing = False
        self._unsaved = False

    async def run(
        self, send: trio.MemorySendChannel[Event], *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        if self._resume is None:
            self._resume = await self._load()
        try:
            stream = await trio.open_unix_socket(str(self._socket))
        except OSError as exc:
            raise self._failure("connect", f"{type(exc).__name__}: {exc}") from exc
        async with stream:
            try:
                await self._stream(stream, self._resume, send, task_status)
            except _Cut as exc:
                raise self._failure("truncated", str(exc)) from exc
        raise self._failure("ended", "the Docker daemon closed the event stream")

    async def _stream(
        self,
        stream: trio.SocketStream,
        resume: ResumePoint,
        send: trio.MemorySendChannel[Event],
        task_status: trio.TaskStatus[None],
    ) -> None:
        since = resume.since()
        target = f"/events?since={since}" if since is not None else "/events"
        connection = h11.Connection(h11.CLIENT)
        request = h11.Request(method="GET", target=target, headers=[("Host", "docker"), ("Accept", "application/json")])
        try:
            await stream.send_all(b"".join(connection.send(part) or b"" for part in (request, h11.EndOfMessage())))
        except (trio.BrokenResourceError, OSError) as exc:
            raise _Cut(f"{type(exc).__name__}: {exc}") from exc
        with trio.move_on_after(CONNECT_TIMEOUT) as waiting:
            response = await _next(stream, connection)
        if waiting.cancelled_caught:
            raise self._failure("timeout", f"no answer in {CONNECT_TIMEOUT} s")
        if not isinstance(response, h11.Response):
            raise self._failure("ended", "the Docker daemon closed the connection before it answered")
        if response.status_code != 200:
            body = await _body(stream, connection, MAX_REFUSAL)
            raise self._failure("http_status", f"HTTP {response.status_code}: {body.strip()}")
        log.info("docker events stream open", socket=self._socket, since=since or "now")
        task_status.started()
        await self._read(stream, connection, resume, send)

    async def _read(
        self, stream: trio.SocketStream, connection: h11.Connection, resume: ResumePoint,
        send: trio.MemorySendChannel[Event],
    ) -> None:  # fmt: skip
        rest = b""
        try:
            while isinstance(data := await _next(stream, connection), h11.Data):
                *lines, rest = (rest + bytes(data.data)).split(b"\n")
                if len(rest) > MAX_LINE:
                    raise self._failure("line_too_long", f"a line past {MAX_LINE} bytes")
                for line in lines:
                    if line.strip():
                        await self._one(line, resume, send)
                if self._unsaved:  # once a read: a burst of replayed events is one write
                    await self._save(resume)
        finally:
            if self._unsaved:  # cancelled or failed after sending: keep what was sent
                with trio.CancelScope(shield=True):
                    await self._save(resume)
        if rest.strip():
            raise self._failure("truncated", f"the stream ended inside a line ({len(rest)} bytes)")

    async def _one(self, line: bytes, resume: ResumePoint, send: trio.MemorySendChannel[Event]) -> None:
        """Sends the event of ``line`` on, unless it was sent already."""
        if resume.is_bad(line):
            self._metrics.skipped.labels("bad_line").inc()
            return
        try:
            event = parse_line(line)
        except ValidationError as exc:
            resume.record_bad(line)
            self._unsaved = True
            raise self._failure("bad_line", str(exc), line=line[:200], line_id=line_identity(line)) from exc
        if resume.is_duplicate(event):
            self._metrics.skipped.labels("duplicate").inc()
            return
        await send.send(to_event(self._entity, event))
        resume.record(event)
        self._unsaved = True
        self._metrics.events.labels(event.type).inc()

    def _failure(self, reason: str, detail: str, **fields: object) -> DockerEventsError:
        self._metrics.stream_errors.labels(reason).inc()
        log.warning("docker events stream failed", socket=self._socket, reason=reason, detail=detail, **fields)
        return DockerEventsError(str(self._socket), reason, detail)

    async def _load(self) -> ResumePoint:
        """The saved resume point; a fresh one (live events only) when there is none or it does
        not load (counted and logged: the agent goes on)."""
        path = self._state_path
        if path is None or not await trio.Path(path).exists():
            return ResumePoint()
        try:
            return ResumePoint.from_json(json.loads(await trio.Path(path).read_bytes()))
        except (OSError, ValueError, ValidationError) as exc:
            self._metrics.state_errors.labels("load").inc()
            log.warning("docker resume point not loaded; reading live events", file=path, error=str(exc))
            return ResumePoint()

    async def _save(self, resume: ResumePoint) -> None:
        self._unsaved = False
        if self._state_path is None:
            return
        data = json.dumps(resume.to_json()).encode()
        try:
            await trio.to_thread.run_sync(_write_atomically, self._state_path, data)
        except OSError as exc:
            self._metrics.state_errors.labels("save").inc()
            if not self._save_failing:  # one line when saving starts failing, not one per event
                log.warning("docker resume point not saved", file=self._state_path, error=str(exc))
            self._save_failing = True
        else:
            self._save_failing = False


def _write_atomically(path: Path, data: bytes) -> None:
    """``data`` replaces ``path`` whole or not at all. Not fsynced: a resume point lost to a power
    cut means replayed events are sent again (the backend has them twice), never that one is lost."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


class _Cut(Exception):
    """The connection to the daemon broke: reset, or closed inside the response."""


async def _next(stream: trio.SocketStream, connection: h11.Connection) -> object:
    """The next HTTP event of the response, reading as it needs."""
    try:
        while (event := connection.next_event()) is h11.NEED_DATA:
            connection.receive_data(await stream.receive_some(RECEIVE_BYTES))
    except (h11.ProtocolError, trio.BrokenResourceError, OSError) as exc:
        raise _Cut(f"{type(exc).__name__}: {exc}") from exc
    return event


async def _body(stream: trio.SocketStream, connection: h11.Connection, limit: int) -> str:
    """The start of a refusal's body, for the log line."""
    body = b""
    while len(body) < limit and isinstance(data := await _next(stream, connection), h11.Data):
        body += bytes(data.data)
    return body[:limit].decode("utf-8", "replace")


def make(context: SourceContext) -> Source:
    """The ``docker`` source (``pipeline agent --source docker``, ``--docker-socket PATH``)."""
    return DockerSource(context)

"""The ``oom`` source: OOM kills from the kernel log, as change events of the agent's entity.

It follows ``/dev/kmsg`` from the agent's start: what the kernel logged before is not reported;
when the agent restarts the source after a failure, it resumes after the last record it read (as
long as the kernel's ring still holds it), so a kill in between is not missed. The device is opened non-blocking: each
read returns one whole record, ``EAGAIN`` when there is none (the task then waits for the fd to
be readable, in trio's own poller), ``EPIPE`` when the kernel's ring overwrote records we had
not read yet (counted as lost; the next read goes on from the oldest record left). Only the
kernel's own records count (facility 0): a process writing to ``/dev/kmsg`` cannot fake a kill.

``kmsg_path`` may also name a regular file holding records one per line (a copy of the kernel
log); it is then followed like ``tail -f``, polled every :data:`FILE_POLL_INTERVAL` seconds.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from collections.abc import Awaitable, Callable

import trio
from prometheus_client import Counter

from pipeline.agent.sources.base import Source, SourceContext
from pipeline.core.host.oom import KmsgRecord, OomKill, OomReader, oom_event, parse_record
from pipeline.errors import HostRecordError
from pipeline.logs import get_logger
from pipeline.model import Event

log = get_logger("agent.source.oom")

#: The largest record the kernel writes is below this (a smaller read fails with EINVAL).
RECORD_BYTES = 16384
#: Seconds between reads of a kernel log kept in a regular file (``/dev/kmsg`` wakes us itself).
FILE_POLL_INTERVAL = 1.0
_KERNEL = 0


class OomSource:
    """Reports every OOM kill the kernel logs after it started."""

    name = "oom"

    def __init__(
        self,
        context: SourceContext,
        *,
        poll_interval: float = FILE_POLL_INTERVAL,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.context = context
        self.path = context.settings.kmsg_path
        self.poll_interval = poll_interval
        self.wall_clock = wall_clock
        #: the kernel's sequence number of the last record read, where a restart resumes
        self.last_sequence: int | None = None
        registry = context.registry
        self.kills = Counter("pipeline_agent_oom_kills", "OOM kills read from the kernel log", registry=registry)
        self.bad_records = Counter(
            "pipeline_agent_oom_bad_records", "Kernel log records the oom source could not parse", registry=registry
        )
        self.lost_records = Counter(
            "pipeline_agent_kmsg_records_lost",
            "Times the kernel's log ring overwrote records before the oom source read them",
            registry=registry,
        )

    async def run(
        self, send: trio.MemorySendChannel[Event], *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        reader = OomReader()
        fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            device = not stat.S_ISREG(os.fstat(fd).st_mode)
            seen = self._position(fd, device)
            log.info("following kernel log", path=str(self.path), device=device, after_sequence=seen)
            task_status.started()

            async def handle(raw: bytes) -> None:
                event = self._event_of(reader, raw, seen)
                if event is not None:
                    await send.send(event)

            await (self._follow_device(fd, handle) if device else self._follow_file(fd, handle))
        finally:
            trio.lowlevel.notify_closing(fd)
            os.close(fd)

    def _position(self, fd: int, device: bool) -> int:
        """Seeks to where reading starts; returns the sequence of the last record already seen.
        A regular file is read from its end. The device is read from the oldest record its ring
        holds: on the first run to its end without reporting anything (so that the sequence
        where it started is known), on a restart from there, so a kill in between is reported."""
        if not device:
            os.lseek(fd, 0, os.SEEK_END)
            return -1
        os.lseek(fd, 0, os.SEEK_SET)
        if self.last_sequence is None:
            self.last_sequence = self._last_sequence_in_ring(fd)
        return self.last_sequence

    @staticmethod
    def _last_sequence_in_ring(fd: int) -> int:
        """Reads every record the ring holds (a few thousand at most, without blocking)."""
        last = -1
        while True:
            try:
                raw = os.read(fd, RECORD_BYTES)
            except BlockingIOError:
                return last
            except BrokenPipeError:
                continue  # overwritten while we read: the next read goes on from the oldest left
            with contextlib.suppress(HostRecordError):
                last = parse_record(raw).sequence

    def _event_of(self, reader: OomReader, raw: bytes, seen: int) -> Event | None:
        """The event of one record, or None; a record that does not parse is counted and logged."""
        try:
            record = parse_record(raw)
            if record.sequence <= seen:
                return None
            self.last_sequence = record.sequence
            kill = reader.feed(record.message) if record.facility == _KERNEL else None
        except HostRecordError as error:
            self.bad_records.inc()
            log.warning("kernel log record refused", path=str(self.path), reason=error.reason, record=error.record)
            return None
        return None if kill is None else self._report(kill, record)

    def _report(self, kill: OomKill, record: KmsgRecord) -> Event:
        self.kills.inc()
        log.info("oom kill", process=kill.process, pid=kill.pid, cgroup=kill.cgroup or "")
        return oom_event(self.context.entity, kill, record, timestamp=int(self.wall_clock()))

    async def _follow_device(self, fd: int, handle: Callable[[bytes], Awaitable[None]]) -> None:
        """Records of ``/dev/kmsg``, one per read, waiting in trio's poller while there is none."""
        while True:
            try:
                raw = os.read(fd, RECORD_BYTES)
            except BlockingIOError:
                await trio.lowlevel.wait_readable(fd)
            except BrokenPipeError:
                self.lost_records.inc()
                log.warning("kernel log records lost", path=str(self.path))
            else:
                await handle(raw)

    async def _follow_file(self, fd: int, handle: Callable[[bytes], Awaitable[None]]) -> None:
        """Lines appended to a regular file (continuation lines, which start with a space,
        dropped); a partial last line waits for its newline."""
        pending = b""
        while True:
            chunk = await trio.to_thread.run_sync(os.read, fd, RECORD_BYTES)
            if not chunk:
                await trio.sleep(self.poll_interval)
                continue
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                if line and not line.startswith(b" "):
                    await handle(line)


def make(context: SourceContext) -> Source:
    return OomSource(context)

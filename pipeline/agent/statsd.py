"""The agent's StatsD listener: UDP in, metrics events at each flush interval out.

The receive loop waits for the socket to be readable, then drains every queued datagram
without awaiting anything (a large ``SO_RCVBUF`` absorbs bursts), parses them in bulk and
adds them to plain dicts; it never waits on the pipeline. Flushes are anchored to the start
time, so they neither drift nor repeat a timestamp, and hand their event to the agent's
outbound queue from their own task. DogStatsD service checks and events become events of the
agent's entity; if their small queue is full they are dropped and counted, never waited on.

A flush is one metrics event, or several when its points would make an event larger than the
maximum event size (each keeps to it). The aggregator holds at most ``max_keys`` distinct keys;
samples of new keys beyond that are dropped, counted, and logged once per flush window.
"""

from __future__ import annotations

import math
import os
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

import trio
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from pipeline.core.limits import split_points
from pipeline.core.statsd.aggregate import DEFAULT_MAX_KEYS, Aggregator
from pipeline.core.statsd.parse import DogEvent, ServiceCheck, decode, parse_text, plain_lines, sanitize
from pipeline.logs import get_logger
from pipeline.model import Check, Entity, Event, MetricPoint, Metrics, ObjectMeta, new_event_id
from pipeline.wire.limits import MAX_EVENT_BYTES

log = get_logger("agent.statsd")

#: Bytes the kernel may queue for the socket; bursts wait there, not in Python.
RECEIVE_BUFFER = 8 * 1024 * 1024
MAX_DATAGRAM = 65535
#: Datagrams read per wakeup at most, so that a flood cannot starve the flush task.
DRAIN_LIMIT = 1000
#: Service checks and events waiting to be sent.
SIDE_EVENTS = 256
#: Bad lines logged per flush interval at most (all are counted).
BAD_LINES_LOGGED = 20

_ALERT_STATUS = {"error": 2, "warning": 1, "info": 0, "success": 0}


@dataclass(slots=True)
class StatsdConfig:
    addr: tuple[str, int] = ("127.0.0.1", 8125)
    flush_interval: float = 10.0
    percentiles: list[float] = field(default_factory=lambda: [90.0])
    delete_idle: bool = False
    event_handlers: list[str] = field(default_factory=list)
    #: distinct keys held at once; samples of new keys beyond it are dropped until keys go
    max_keys: int = DEFAULT_MAX_KEYS


class KernelDrops(Collector):
    """``pipeline_statsd_kernel_drops``: datagrams the kernel dropped for our socket."""

    def __init__(self) -> None:
        self.inode: int | None = None

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily("pipeline_statsd_kernel_drops", "Datagrams dropped by the kernel (full buffer)")
        if self.inode is not None:
            family.add_metric([], read_udp_drops(self.inode))
        yield family


def read_udp_drops(inode: int) -> int:
    """The ``drops`` column of ``/proc/net/udp{,6}`` for the socket with this inode."""
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(table) as f:
                for line in f.readlines()[1:]:
                    fields = line.split()
                    if len(fields) >= 13 and fields[9] == str(inode):
                        return int(fields[12])
        except OSError:
            continue
    return 0


class StatsdServer:
    def __init__(
        self,
        config: StatsdConfig,
        entity: Entity,
        submit: Callable[[Event], Awaitable[None]],
        registry: CollectorRegistry,
        *,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.entity = entity
        self.submit = submit
        self.wall_clock = wall_clock
        self.aggregator = Aggregator(
            percentiles=config.percentiles, delete_idle=config.delete_idle, max_keys=config.max_keys
        )
        self.packets = Counter("pipeline_statsd_packets", "StatsD datagrams received", registry=registry)
        self.lines = Counter("pipeline_statsd_lines", "StatsD lines received", registry=registry)
        self.bad_lines = Counter("pipeline_statsd_bad_lines", "StatsD lines refused", registry=registry)
        self.flushes = Counter("pipeline_statsd_flushes", "StatsD flushes that produced an event", registry=registry)
        self.flush_events = Counter(
            "pipeline_statsd_flush_events", "Metrics events StatsD flushes made (several when split)", registry=registry
        )
        self.keys_dropped = Counter(
            "pipeline_statsd_keys_dropped",
            "StatsD samples of new keys dropped because the aggregator held --statsd-max-keys keys",
            registry=registry,
        )
        self.side_drops = Counter(
            "pipeline_statsd_side_events_dropped", "Service checks and events dropped (queue full)", registry=registry
        )
        self.points_dropped = Counter(
            "pipeline_statsd_points_dropped", "Flushed StatsD points dropped as not finite", registry=registry
        )
        self.kernel_drops = KernelDrops()
        registry.register(self.kernel_drops)
        self._side_send, self._side_receive = trio.open_memory_channel[Event](SIDE_EVENTS)
        self._bad_logged = 0
        #: handled since the receive loop last counted them (see _count_received)
        self._received_packets = self._received_lines = 0

    async def run(self, *, task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED) -> None:
        host, port = self.config.addr
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        with sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
            try:
                sock.bind((host, port))
            except OSError as exc:
                raise OSError(exc.errno, f"StatsD on {host}:{port}: {exc.strerror}") from exc
            sock.setblocking(False)
            self.kernel_drops.inode = _inode_of(sock)
            address = sock.getsockname()[:2]
            log.info(
                "statsd listening", address=f"{address[0]}:{address[1]}", flush_interval=self.config.flush_interval
            )
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._flush_forever)
                nursery.start_soon(self._send_side_events)
                task_status.started((address[0], address[1]))
                await self._receive_forever(sock)

    async def _receive_forever(self, sock: socket.socket) -> None:
        recvfrom, handle = sock.recvfrom, self.handle_datagram
        while True:
            await trio.lowlevel.wait_readable(sock)
            for _ in range(DRAIN_LIMIT):
                try:
                    data, sender = recvfrom(MAX_DATAGRAM)
                except BlockingIOError:
                    break
                handle(data, sender)
            self._count_received()
            await trio.lowlevel.checkpoint()

    def _count_received(self) -> None:
        """Move the datagrams and lines handled since the last call into their Prometheus
        counters: once a receive wakeup, not twice a datagram (an ``inc`` takes a lock, and
        two cost a quarter of a ten-metric datagram)."""
        if self._received_packets:
            self.packets.inc(self._received_packets)
            self.lines.inc(self._received_lines)
            self._received_packets = self._received_lines = 0

    def handle_datagram(self, data: bytes, sender: tuple[str, int] | str = "") -> None:
        """Parse and aggregate one datagram (no awaiting: this runs in the receive loop)."""
        self._received_packets += 1
        text = decode(data)
        plain = plain_lines(text)
        if plain is not None:  # nearly every datagram: no Sample objects, no per-line Python
            self.aggregator.add_plain(plain)
            self._received_lines += len(plain)
            return
        parsed = parse_text(text)
        self._received_lines += parsed.lines
        self.aggregator.add(parsed.samples)
        if parsed.bad:
            self.bad_lines.inc(len(parsed.bad))
            for line, reason in parsed.bad:
                if self._bad_logged < BAD_LINES_LOGGED:
                    self._bad_logged += 1
                    log.warning("bad statsd line", line=line, reason=reason, sender=_peer(sender))
        for check in parsed.service_checks:
            self._queue_side_event(self._service_check_event(check))
        for event in parsed.events:
            self._queue_side_event(self._dog_event(event))

    async def _flush_forever(self) -> None:
        interval = self.config.flush_interval
        start = trio.current_time()
        for n in range(1, 2**62):
            await trio.sleep_until(start + n * interval)
            await self.flush()

    async def flush(self) -> None:
        """Emit the points of the interval as metrics-only events (none if empty), as many as it
        takes for each to keep to the maximum event size."""
        self._bad_logged = 0
        self._count_received()
        dropped = self.aggregator.take_dropped()
        if dropped:
            self.keys_dropped.inc(dropped)
            log.warning("statsd samples of new keys dropped", dropped=dropped, max_keys=self.config.max_keys,
                        held=self.aggregator.keys)  # fmt: skip
        now = math.floor(self.wall_clock())
        points = self.aggregator.flush(now, self.config.flush_interval)
        finite = [p for p in points if math.isfinite(p.value)]
        if len(finite) < len(points):  # a counter that overflowed, etsy's NaN sum_top100: unsendable
            self.points_dropped.inc(len(points) - len(finite))
            log.warning("statsd points not finite; dropped", count=len(points) - len(finite))
            points = finite
        if not points:
            return
        room = MAX_EVENT_BYTES - len(self._metrics_event(now, []).to_msgpack()) - 16
        chunks = split_points(points, room)
        self.flushes.inc()
        self.flush_events.inc(len(chunks))
        if len(chunks) > 1:
            log.info("statsd flush split", points=len(points), events=len(chunks), limit=MAX_EVENT_BYTES)
        for chunk in chunks:
            await self.submit(self._metrics_event(now, chunk))

    def _metrics_event(self, now: int, points: list[MetricPoint]) -> Event:
        return Event(
            timestamp=now,
            entity=self.entity,
            metrics=Metrics(handlers=list(self.config.event_handlers), points=points),
            metadata=ObjectMeta(namespace=self.entity.metadata.namespace),
            id=new_event_id(),
        )

    def _queue_side_event(self, event: Event) -> None:
        try:
            self._side_send.send_nowait(event)
        except trio.WouldBlock:
            self.side_drops.inc()
            log.warning("statsd service check or event dropped", reason="queue full", check=event.check_name)

    async def _send_side_events(self) -> None:
        async for event in self._side_receive:
            await self.submit(event)

    def _check_event(
        self, name: str, status: int, output: str, timestamp: int | None, tags: tuple[tuple[str, str], ...]
    ) -> Event:
        now = int(self.wall_clock())
        namespace = self.entity.metadata.namespace
        check = Check(
            metadata=ObjectMeta(name=sanitize(name) or "statsd", namespace=namespace, labels=dict(tags)),
            status=status,
            output=output,
            executed=timestamp or now,
            issued=timestamp or now,
            interval=max(1, int(self.config.flush_interval)),
            processed_by=self.entity.metadata.name,
            handlers=list(self.config.event_handlers),
        )
        return Event(
            timestamp=now, entity=self.entity, check=check, metadata=ObjectMeta(namespace=namespace), id=new_event_id()
        )

    def _service_check_event(self, check: ServiceCheck) -> Event:
        return self._check_event(check.name, check.status, check.message, check.timestamp, check.tags)

    def _dog_event(self, event: DogEvent) -> Event:
        status = _ALERT_STATUS.get(event.alert_type, 0)
        result = self._check_event(event.title, status, event.text, event.timestamp, event.tags)
        assert result.check is not None
        result.check.metadata.annotations = {
            "statsd/priority": event.priority,
            "statsd/alert_type": event.alert_type,
            **({"statsd/aggregation_key": event.aggregation_key} if event.aggregation_key else {}),
            **({"statsd/source_type": event.source_type} if event.source_type else {}),
        }
        return result


def _inode_of(sock: socket.socket) -> int | None:
    try:
        return os.fstat(sock.fileno()).st_ino
    except OSError:
        return None


def _peer(sender: tuple[str, int] | str) -> str:
    return f"{sender[0]}:{sender[1]}" if isinstance(sender, tuple) else str(sender)

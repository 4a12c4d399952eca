"""The agent's sources of events (see :mod:`pipeline.agent.sources.base`): the registry of the
sources an operator switches on by name, and the runner that keeps each one running.

Every source's events go, through a channel of its own (so they are counted by source), into
the agent's one bounded outbound channel, which the spooler empties into the on-disk spool. A
slow spool fills that channel and every source then waits on its ``send``: backpressure, never
a silent drop. A source that raises (or ends: a source runs until cancelled) is logged, counted
and started again after a backoff that doubles up to :data:`BACKOFF_MAX`; the agent goes on.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager

import trio

from pipeline.agent.metrics import AgentMetrics
from pipeline.agent.sources import docker, kubernetes, oom, packages
from pipeline.agent.sources.base import Source, SourceContext, SourceFactory, SourceSettings
from pipeline.errors import UnknownSource, first_error
from pipeline.logs import get_logger
from pipeline.model import Event

__all__ = ["SOURCES", "Outlet", "Source", "SourceContext", "SourceRunner", "SourceSettings", "make_sources"]

log = get_logger("agent.sources")

#: The host sources ``pipeline agent --source NAME`` switches on, by name (one line per source).
SOURCES: dict[str, SourceFactory] = {
    "oom": oom.make,
    "packages": packages.make,
    "docker": docker.make,
    "kubernetes": kubernetes.make,
}

#: Seconds before the first restart of a failed source; doubled after each failure, up to the cap.
BACKOFF_MIN, BACKOFF_MAX = 1.0, 300.0
#: A source that ran this long before failing is restarted after :data:`BACKOFF_MIN` again.
BACKOFF_RESET = 60.0


def check_source_names(names: Sequence[str]) -> None:
    """Raise :class:`UnknownSource` for the first name no registered source has."""
    for name in names:
        if name not in SOURCES:
            raise UnknownSource(name, sorted(SOURCES))


def make_sources(names: Sequence[str], context: SourceContext) -> list[Source]:
    """The sources ``names`` switch on (each once, in the order given)."""
    check_source_names(names)
    return [SOURCES[name](context) for name in dict.fromkeys(names)]


class Outlet:
    """The send channel of a source's current run, for the parts of the agent built once and
    called from outside the run (its HTTP app, its scheduler, which the backend's messages reach).

    ``send_durably`` returns only once the event is in the on-disk spool: what the local API and
    the client socket promise their clients before they answer.

    ``direct``: the agent's ``submit`` and the source's counter, for the sources of one event a
    request (the local API, the client socket): their events go straight into the outbound
    channel, counted here, while the source runs, rather than through its channel and forwarder
    task (a task hand-off, about 5 % of the agent's CPU a result at 2,500 results/s)."""

    def __init__(
        self, spooled: Callable[[str], trio.Event],
        direct: tuple[Callable[[Event], Awaitable[None]], Callable[[], None]] | None = None,
    ) -> None:  # fmt: skip
        self._spooled = spooled
        self._direct = direct
        self._channel: trio.MemorySendChannel[Event] | None = None

    @contextmanager
    def attached(self, channel: trio.MemorySendChannel[Event]) -> Iterator[None]:
        self._channel = channel
        try:
            yield
        finally:
            self._channel = None

    async def send(self, event: Event) -> None:
        if self._channel is None:  # between two runs of the source: nothing may take it now
            raise trio.ClosedResourceError("the source is restarting")
        if self._direct is not None:
            submit, counted = self._direct
            await submit(event)
            counted()
            return
        await self._channel.send(event)

    async def send_durably(self, event: Event) -> None:
        spooled = self._spooled(event.id)
        await self.send(event)
        await spooled.wait()


class SourceRunner:
    """Runs sources under the agent, each restarted when it fails. Their events go to ``submit``
    (the agent's: into its one bounded outbound channel, waiting while it is full)."""

    def __init__(self, submit: Callable[[Event], Awaitable[None]], metrics: AgentMetrics) -> None:
        self.submit = submit
        self.metrics = metrics

    async def run(
        self, source: Source, *, required: bool = False, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Run ``source`` until cancelled; ``task_status.started()`` once it observes. A failure
        before that first start is raised when ``required`` (the agent's own listeners: a port in
        use stops the agent at once); otherwise it is retried like any other, and the agent is
        told the source started so that it does not wait for it."""
        name = source.name
        self.metrics.source_up.labels(name).set(0)
        status: trio.TaskStatus[None] | None = task_status
        delay = BACKOFF_MIN
        while True:
            began = trio.current_time()
            observing = trio.Event()
            try:
                error = await self._run_once(source, functools.partial(self._started, name, observing, status))
            finally:
                self.metrics.source_up.labels(name).set(0)
            if status is not None and not observing.is_set():
                if required and error is not None:  # as the agent raised before sources (a port in use)
                    raise first_error(error) if isinstance(error, BaseExceptionGroup) else error
                status.started()  # the agent goes on; this source is retried below
            status = None
            if trio.current_time() - began >= BACKOFF_RESET:
                delay = BACKOFF_MIN
            self._failed(name, error, delay)
            await trio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX)

    def _started(self, name: str, observing: trio.Event, status: trio.TaskStatus[None] | None) -> None:
        observing.set()
        self.metrics.source_up.labels(name).set(1)
        if status is not None:
            log.info("source started", source=name)
            status.started()

    def _failed(self, name: str, error: Exception | None, delay: float) -> None:
        self.metrics.source_failures.labels(name).inc()
        leaf = None if error is None else first_error(error) if isinstance(error, BaseExceptionGroup) else error
        log.warning("source failed; restarting", source=name, reason="ended" if leaf is None else type(leaf).__name__,
                    error=leaf or "it returned", restart_in=f"{delay:.1f}")  # fmt: skip

    async def _run_once(self, source: Source, started: Callable[[], None]) -> Exception | None:
        """One run of ``source``; what it raised, or None when it returned. Events it handed over
        before failing are forwarded all the same: the forwarder ends when the source's channel
        closes, not when the source fails."""
        send, receive = trio.open_memory_channel[Event](0)
        error: Exception | None = None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._forward, source.name, receive)
            async with send:
                try:
                    await _observe(source.run, send, started)
                except Exception as exc:  # groups of Exceptions only: Cancelled is a BaseException, it passes
                    error = exc
        return error

    async def _forward(self, name: str, receive: trio.MemoryReceiveChannel[Event]) -> None:
        counted = self.metrics.source_events.labels(name)
        async with receive:
            async for event in receive:
                await self.submit(event)
                counted.inc()


async def _observe(
    run: Callable[..., Awaitable[None]], send: trio.MemorySendChannel[Event], started: Callable[[], None]
) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(functools.partial(run, send))
        started()

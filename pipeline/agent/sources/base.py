"""One shape for everything on the agent that produces events: a *source*.

A source is a trio task given a sending channel. It observes one thing (the scheduler's check
runs, StatsD datagrams, the kernel log, dpkg's log, the Docker or Kubernetes event stream) and
sends each event it makes into the channel, which the agent spools durably before anything else
happens to it. Sources are switched on by name (``pipeline agent --source NAME`` or the config
file's ``source:`` key), each has its own metrics, and one failing never stops the others: the agent
restarts it with a backoff and counts the failure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import trio
from prometheus_client import CollectorRegistry

from pipeline.agent.source_settings import SourceSettings
from pipeline.model import Entity, Event

__all__ = ["Source", "SourceContext", "SourceFactory", "SourceSettings"]


@dataclass(frozen=True, slots=True)
class SourceContext:
    """What a source is made from: the agent's own (redacted) entity, whose events a host source
    reports, the settings, and the registry its metrics go in."""

    entity: Entity
    settings: SourceSettings
    registry: CollectorRegistry


class Source(Protocol):
    """Runs until cancelled, sending every event it observes into ``send``. It calls
    ``task_status.started()`` once it is observing, so that what happens after the agent says it
    started is seen. It may raise on a failure it cannot ride out; the agent then logs, counts and
    restarts it."""

    name: str

    async def run(
        self, send: trio.MemorySendChannel[Event], *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None: ...


#: How each named source is made; the registry of names lives in ``pipeline.agent.sources``.
SourceFactory = Callable[[SourceContext], Source]

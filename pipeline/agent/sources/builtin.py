"""The agent's own producers as sources: the check scheduler, StatsD, the local API and the
client socket. Each wraps a part built once by the agent (the backend's messages reach the
scheduler, the API's app is served again after a restart); an :class:`Outlet` gives that part
the channel of the source's current run."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio

from pipeline.agent.scheduler import Scheduler
from pipeline.agent.sources import Outlet
from pipeline.model import Event

#: Serves until cancelled, giving its bound address to ``task_status``.
Serve = Callable[..., Awaitable[None]]


class SchedulerSource:
    """The check scheduler: every result of a scheduled or requested check run."""

    name = "scheduler"

    def __init__(self, scheduler: Scheduler, outlet: Outlet) -> None:
        self.scheduler = scheduler
        self.outlet = outlet

    async def run(
        self, send: trio.MemorySendChannel[Event], *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        with self.outlet.attached(send):
            await self.scheduler.run(task_status=task_status)


class ListenerSource:
    """A source that listens on an address (StatsD, the local API, the client socket);
    ``address`` is the bound one once it started."""

    def __init__(self, name: str, serve: Serve, outlet: Outlet) -> None:
        self.name = name
        self.serve = serve
        self.outlet = outlet
        self.address: tuple[str, int] | None = None

    async def run(
        self, send: trio.MemorySendChannel[Event], *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        with self.outlet.attached(send):
            async with trio.open_nursery() as nursery:
                address: Any = await nursery.start(self.serve)
                self.address = (address[0], address[1])
                task_status.started()

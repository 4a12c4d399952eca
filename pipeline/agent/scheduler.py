"""Run each check on its interval, anchored to the schedule so that runs never drift.

Every check has one task. The n-th run is due at ``first + n * interval`` whatever the previous
run took; a run still going when the next is due makes that next run be skipped (counted), so
a check never runs twice at once.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable

import trio

from pipeline.logs import get_logger
from pipeline.model import CheckConfig, Event
from pipeline.model.codec import encode

log = get_logger("agent.scheduler")

RunCheck = Callable[[CheckConfig, int], Awaitable[Event]]


def next_due(first: float, interval: float, now: float) -> float:
    """The first scheduled time at or after ``now`` on the grid ``first + n * interval``."""
    if now <= first:
        return first
    periods = math.ceil((now - first) / interval)
    return first + periods * interval


class Scheduler:
    """Keeps one task per check; :meth:`update` replaces the set of checks."""

    def __init__(
        self,
        run_check: RunCheck,
        send: Callable[[Event], Awaitable[None]],
        *,
        on_skip: Callable[[str], None] = lambda name: None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._run_check = run_check
        self._send = send
        self._on_skip = on_skip
        self._wall_clock = wall_clock
        self._tasks: dict[str, tuple[dict[str, object], trio.CancelScope]] = {}
        self._nursery: trio.Nursery | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    @property
    def scheduled(self) -> list[str]:
        return sorted(self._tasks)

    def update(self, checks: list[CheckConfig]) -> None:
        """Schedule exactly ``checks``: new ones start, changed ones restart, gone ones stop."""
        assert self._nursery is not None, "Scheduler.run must be started first"
        wanted = {c.metadata.name: c for c in checks if c.publish and c.interval > 0}
        for name in list(self._tasks):
            spec, scope = self._tasks[name]
            if name not in wanted or encode(wanted[name]) != spec:
                scope.cancel()
                del self._tasks[name]
        for name, config in wanted.items():
            if name not in self._tasks:
                scope = trio.CancelScope()
                self._tasks[name] = (encode(config), scope)
                self._nursery.start_soon(self._run_schedule, config, scope)
                log.info("check scheduled", check=name, interval=config.interval)

    async def _run_schedule(self, config: CheckConfig, scope: trio.CancelScope) -> None:
        with scope:
            interval = float(config.interval)
            first = trio.current_time()
            due = first
            while True:
                await trio.sleep_until(due)
                event = await self._run_check(config, int(self._wall_clock()))
                await self._send(event)
                following = next_due(first, interval, max(trio.current_time(), due + interval))
                missed = round((following - due) / interval) - 1
                for _ in range(missed):
                    self._on_skip(config.metadata.name)
                due = following

"""One task per scheduled check, for the agent's scheduler and the backend's alike: given the
checks wanted now, the changed ones restart, the gone ones stop and the new ones start."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

import trio

from pipeline.core.schedule import ScheduleError
from pipeline.logs import get_logger
from pipeline.model import CheckConfig
from pipeline.model.codec import encode

log = get_logger("check_tasks")

K = TypeVar("K", bound=Hashable)
#: Runs one check's schedule until its cancel scope is cancelled.
RunSchedule = Callable[[CheckConfig, trio.CancelScope], Awaitable[None]]


class CheckTasks(Generic[K]):
    """The running schedules by key, each with the configuration it was started with."""

    def __init__(self) -> None:
        self._tasks: dict[K, tuple[dict[str, object], trio.CancelScope]] = {}

    def keys(self) -> list[K]:
        return list(self._tasks)

    def replace(self, nursery: trio.Nursery, wanted: dict[K, CheckConfig], run: RunSchedule) -> list[K]:
        """Run exactly ``wanted``; returns the keys started (new or changed)."""
        for key in list(self._tasks):
            spec, scope = self._tasks[key]
            if key not in wanted or encode(wanted[key]) != spec:
                scope.cancel()
                del self._tasks[key]
        started = []
        for key, check in wanted.items():
            if key not in self._tasks:
                scope = trio.CancelScope()
                self._tasks[key] = (encode(check), scope)
                nursery.start_soon(run, check, scope)
                started.append(key)
        return started


@contextmanager
def unschedulable_ends(check: str, count: Callable[[], None]) -> Iterator[None]:
    """Around one check's schedule: one that has no next run (a cron the resources' checks would
    refuse, come another way) ends that check's task alone, logged and ``count``ed, rather than
    failing the scheduler and every check in it."""
    try:
        yield
    except ScheduleError as exc:
        count()
        log.error("check no longer scheduled: it has no next run", check=check, error=exc)

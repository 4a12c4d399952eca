"""Run each check on its schedule (interval with splay, or cron), never twice at once.

Every check has one task. Run times come from :mod:`pipeline.core.schedule`: they are fixed
by the schedule, not by when the previous run ended, so nothing drifts. A run still going
when the next is due makes that next run be skipped (and counted). A run due inside one of the
check's ``subdues`` windows does not happen (counted too), as Sensu Go's schedulers skip it; an
ad hoc execution (:meth:`Scheduler.run_once`) runs whatever the windows say, as in Sensu Go.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import trio

from pipeline.check_tasks import CheckTasks, unschedulable_ends
from pipeline.core.backend_schedule import backend_scheduled
from pipeline.core.schedule import schedule_for
from pipeline.core.subdues import is_subdued
from pipeline.logs import get_logger
from pipeline.model import CheckConfig, Entity, Event

log = get_logger("agent.scheduler")

#: (check, issued, proxy entity or None) -> its event
RunCheck = Callable[[CheckConfig, int, Entity | None], Awaitable[Event]]


class Scheduler:
    """Keeps one task per check; :meth:`update` replaces the set of checks."""

    def __init__(
        self,
        agent: str,
        run_check: RunCheck,
        send: Callable[[Event], Awaitable[None]],
        *,
        on_skip: Callable[[str], None] = lambda name: None,
        on_subdued: Callable[[str], None] = lambda name: None,
        on_unschedulable: Callable[[str], None] = lambda name: None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.agent = agent
        self._run_check = run_check
        self._send = send
        self._on_skip = on_skip
        self._on_subdued = on_subdued
        self._on_unschedulable = on_unschedulable
        self._wall_clock = wall_clock
        self._tasks: CheckTasks[str] = CheckTasks()
        self._nursery: trio.Nursery | None = None
        #: the checks of the last update, scheduled again when the scheduler is restarted
        self._checks: list[CheckConfig] = []

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self._tasks = CheckTasks()  # a restart: the tasks of the last run are gone with its nursery
            try:
                self.update(self._checks)
                task_status.started()
                await trio.sleep_forever()
            finally:
                self._nursery = None

    @property
    def scheduled(self) -> list[str]:
        return sorted(self._tasks.keys())

    def update(self, checks: list[CheckConfig]) -> None:
        """Schedule exactly ``checks``: new ones start, changed ones restart, gone ones stop. Round
        robin and proxy checks are the backend's to schedule: they run only when it asks."""
        self._checks = list(checks)
        if self._nursery is None:  # not running (restarting after a failure): run schedules them
            return
        wanted = {
            c.metadata.name: c for c in checks if c.publish and (c.interval > 0 or c.cron) and not backend_scheduled(c)
        }
        for name in self._tasks.replace(self._nursery, wanted, self._run_schedule):
            config = wanted[name]
            log.info("check scheduled", check=name, interval=config.interval, cron=config.cron)

    def run_once(self, config: CheckConfig, proxy: Entity | None = None) -> None:
        """Run ``config`` once, now, beside its schedule if it has one (an ad hoc execution, or a
        run the backend scheduled); ``proxy``: the entity of a proxy request."""
        if self._nursery is None:
            self._on_skip(config.metadata.name)
            log.warning("check run on request not made", check=config.metadata.name, reason="scheduler restarting")
            return
        log.debug("check executed on request", check=config.metadata.name, proxy=proxy.name if proxy else "")
        self._nursery.start_soon(self._run_now, config, proxy)

    async def _run_now(self, config: CheckConfig, proxy: Entity | None) -> None:
        await self._send(await self._run_check(config, int(self._wall_clock()), proxy))

    async def _run_schedule(self, config: CheckConfig, scope: trio.CancelScope) -> None:
        name = config.metadata.name
        with scope, unschedulable_ends(name, lambda: self._on_unschedulable(name)):
            schedule = schedule_for(self.agent, name, interval=config.interval, cron=config.cron)
            due = schedule.next_after(self._wall_clock())
            subdued = False
            skipping = 0  # runs skipped since the last run that was on time
            while True:
                await trio.sleep(max(0.0, due - self._wall_clock()))
                if subdued != is_subdued(config.subdues, due):
                    subdued = not subdued
                    log.info("check subdued" if subdued else "check no longer subdued", check=name)
                if subdued:
                    self._on_subdued(name)
                else:
                    await self._send(await self._run_check(config, int(due), None))
                following = schedule.next_after(max(self._wall_clock(), due))
                skipped = schedule.runs_between(due, following)
                for _ in range(skipped):
                    self._on_skip(name)
                # One line when runs start being skipped and one when they stop, not one per
                # skipped run: a check that always overruns would log at its own rate.
                if skipped and not skipping:
                    log.warning("check runs skipped", check=name, reason="previous run still going")
                elif skipping and not skipped:
                    log.info("check runs on time again", check=name, skipped=skipping)
                skipping = skipping + skipped if skipped else 0
                due = following

"""When a check runs: interval grids with a per-agent phase (splay), and cron. Pure.

Times here are wall-clock seconds given as parameters; nothing reads a clock.

- ``interval: N``: runs fall on a fixed grid ``phase + k * N``. The phase is a hash of the
  agent and check names, so the same check on many agents is spread over the interval
  instead of firing at one instant, and an agent that restarts keeps its phase. A run is
  anchored to the grid, never to the end of the previous run, so nothing drifts.
- ``cron``: standard five fields (robfig/cron's ``ParseStandard``, as Sensu Go), the
  descriptors ``@yearly``, ``@annually``, ``@monthly``, ``@weekly``, ``@daily``,
  ``@midnight``, ``@hourly``, ``@every <duration>`` (``@every 1h30m``, an interval grid), and
  an optional ``CRON_TZ=<zone>`` prefix; otherwise the agent's local time zone.
"""

from __future__ import annotations

import datetime
import hashlib
import math
import re
from dataclasses import dataclass
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter

_DESCRIPTORS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", re.ASCII)
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
#: Where a cron expression is asked for its first run, to refuse one that never fires (2000-01-01).
_REFERENCE = 946_684_800.0


class ScheduleError(ValueError):
    """A cron expression or duration that cannot be scheduled; the message says why."""


class Schedule(Protocol):
    def next_after(self, wall: float) -> float:
        """The first run time strictly after ``wall``."""
        ...

    def runs_between(self, start: float, end: float) -> int:
        """How many run times lie strictly between ``start`` and ``end``."""
        ...


def splay_phase(agent: str, check: str, interval: float) -> float:
    """A stable offset in ``[0, interval)`` for this agent and check."""
    digest = hashlib.sha256(f"{agent}\0{check}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * interval


@dataclass(slots=True, frozen=True)
class IntervalSchedule:
    interval: float
    phase: float = 0.0

    def first_at_or_after(self, wall: float) -> float:
        periods = math.ceil((wall - self.phase) / self.interval)
        return self.phase + periods * self.interval

    def next_after(self, wall: float) -> float:
        due = self.first_at_or_after(wall)
        return due + self.interval if due <= wall else due

    def runs_between(self, start: float, end: float) -> int:
        return max(0, math.ceil((end - start) / self.interval - 1e-9) - 1)


@dataclass(slots=True, frozen=True)
class CronSchedule:
    expression: str
    zone: datetime.tzinfo

    def next_after(self, wall: float) -> float:
        """ScheduleError when there is none (croniter looks 50 years ahead)."""
        start = datetime.datetime.fromtimestamp(wall, self.zone)
        try:
            return float(croniter(self.expression, start).get_next(float))
        except CroniterBadDateError:
            raise ScheduleError(f"cron {self.expression!r} has no run after {start.isoformat()}") from None

    def runs_between(self, start: float, end: float) -> int:
        count = 0
        run = self.next_after(start)
        while run < end and count < 100_000:
            count += 1
            run = self.next_after(run)
        return count


def parse_duration(text: str) -> float:
    """A Go duration (``90s``, ``1h30m``, ``1.5h``) in seconds."""
    position, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if not text or position != len(text):
        raise ScheduleError(f"invalid duration {text!r} (expected e.g. 30s, 5m, 1h30m)")
    if total <= 0:
        raise ScheduleError(f"duration {text!r} must be positive")
    return total


def parse_cron(expression: str, local: datetime.tzinfo | None = None) -> IntervalSchedule | CronSchedule:
    """The schedule of a ``cron`` field (see the module docstring for the accepted forms)."""
    text = expression.strip()
    zone: datetime.tzinfo | None = local
    if text.startswith(("CRON_TZ=", "TZ=")):
        name, _, text = text.partition("=")[2].partition(" ")
        try:
            zone = ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ScheduleError(f"unknown time zone {name!r} in cron {expression!r}") from None
        text = text.strip()
    if text.startswith("@every"):
        return IntervalSchedule(parse_duration(text.removeprefix("@every").strip()))
    if text.startswith("@"):
        if text not in _DESCRIPTORS:
            raise ScheduleError(f"unknown cron descriptor {text!r} (expected one of {', '.join(sorted(_DESCRIPTORS))})")
    elif len(text.split()) != 5:
        raise ScheduleError(f"cron {expression!r} must have 5 fields (minute hour day month weekday)")
    if not croniter.is_valid(text):
        raise ScheduleError(f"invalid cron expression {expression!r}")
    if zone is None:
        zone = datetime.datetime.now().astimezone().tzinfo or datetime.UTC
    schedule = CronSchedule(text, zone)
    try:  # accepted, a date no calendar has (the 31st of February) stopped every check of the agent
        schedule.next_after(_REFERENCE)
    except ScheduleError:
        raise ScheduleError(f"cron {expression!r} never fires: no date matches it") from None
    return schedule


def schedule_for(agent: str, check: str, *, interval: int, cron: str) -> IntervalSchedule | CronSchedule:
    """The schedule of one check on one agent."""
    if cron:
        schedule = parse_cron(cron)
        if isinstance(schedule, IntervalSchedule):
            return IntervalSchedule(schedule.interval, splay_phase(agent, check, schedule.interval))
        return schedule
    return IntervalSchedule(float(interval), splay_phase(agent, check, float(interval)))

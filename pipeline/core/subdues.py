"""Whether an instant is inside a check's subdue windows, as Sensu Go 6 computes it.

This follows Sensu Go's ``TimeWindowRepeated.InWindows`` (core/v2 ``time_window.go``) step by
step, quirks included, so that a check moved from Sensu Go is quiet at the same instants:

- the window lives in the fixed UTC offset written in ``begin``: a window written ``+01:00``
  stays at +01:00 in summer (an hour later on a Paris wall clock then); write the summer
  windows with ``+02:00`` to follow the wall clock;
- a repeated window counts only from ``begin`` on; ``end`` is included to the second (Sensu
  adds one second to it);
- ``daily``, ``monthly`` and ``annually`` place the window on the instant's own date, so the
  part of a window that crosses midnight (22:00 to 02:00) is quiet only before midnight;
- a weekday's window (``mondays``, ``weekdays`` ...) is placed in the instant's Sunday-first
  week, so its part after midnight is quiet too, except Saturday's (it would fall on Sunday,
  the first day of the next week).

No clock: the instant is a parameter (seconds since the epoch).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from pipeline.model.subdue import TimeWindowRepeated

_ONE_SECOND = timedelta(seconds=1)
#: Go's ``time.Weekday`` numbers (Sunday is 0) of the day names ``repeat`` takes.
_DAYS = {"sundays": 0, "mondays": 1, "tuesdays": 2, "wednesdays": 3, "thursdays": 4, "fridays": 5, "saturdays": 6}
_WEEKDAYS, _WEEKENDS = (1, 2, 3, 4, 5), (6, 0)


def _go_weekday(moment: datetime) -> int:
    return (moment.weekday() + 1) % 7


class _Window:
    """One window's parsed bounds, and Sensu's placement rules for each repeat period."""

    __slots__ = ("begin", "duration", "end")

    def __init__(self, window: TimeWindowRepeated) -> None:
        self.begin = window.begin_time
        self.end = window.end_time
        self.duration = self.end - self.begin

    def _placed(self, day: datetime) -> datetime:
        # Go's time.Date(y, m, d, beginHour, beginMin, beginSec, 0, begin's zone)
        return datetime(day.year, day.month, day.day, self.begin.hour, self.begin.minute, self.begin.second,
                        tzinfo=self.begin.tzinfo)  # fmt: skip

    # The bounds are compared by their differences (timedeltas reach far beyond any date), not by
    # adding Sensu's second to the end: a window that ends on 9999-12-31T23:59:59Z, the last
    # second a datetime holds, raised OverflowError there, and with it every run of its check.
    def _inside(self, moment: datetime, start: datetime) -> bool:
        return start <= moment and moment - start < self.duration + _ONE_SECOND

    def absolute(self, moment: datetime) -> bool:
        return self.begin <= moment and moment - self.end < _ONE_SECOND

    def on_day(self, moment: datetime, weekday: int) -> bool:
        if moment < self.begin:
            return False
        local = moment.astimezone(self.begin.tzinfo)
        start = self._placed(local) + timedelta(days=weekday - _go_weekday(local))
        return self._inside(local, start)

    def today(self, moment: datetime) -> bool:
        local = moment.astimezone(self.begin.tzinfo)
        if local < self.begin:
            return False
        return self._inside(local, self._placed(local))

    def period(self, moment: datetime, repeat: str) -> bool:
        local = moment.astimezone(self.begin.tzinfo)
        if repeat in _DAYS:
            return self.on_day(moment, _DAYS[repeat])
        if repeat == "daily":
            return self.today(moment)
        if repeat == "weekdays":
            return any(self.on_day(moment, day) for day in _WEEKDAYS)
        if repeat == "weekends":
            return any(self.on_day(moment, day) for day in _WEEKENDS)
        if repeat == "weekly":
            return self.on_day(moment, _go_weekday(self.begin))
        if repeat == "monthly":
            return local.day == self.begin.day and self.today(moment)
        if repeat == "annually":
            return (local.month, local.day) == (self.begin.month, self.begin.day) and self.today(moment)
        return False


def in_window(window: TimeWindowRepeated, instant: float) -> bool:
    """Whether ``instant`` (epoch seconds) is inside ``window`` (a valid one: see its ``validate``)."""
    parsed = _Window(window)
    moment = datetime.fromtimestamp(instant, parsed.begin.tzinfo)
    if not window.repeat:
        return parsed.absolute(moment)
    return any(parsed.period(moment, repeat) for repeat in window.repeat)


def is_subdued(windows: Iterable[TimeWindowRepeated], instant: float) -> bool:
    """Sensu Go's ``CheckConfig.IsSubdued``: inside any of the check's windows."""
    return any(in_window(window, instant) for window in windows)

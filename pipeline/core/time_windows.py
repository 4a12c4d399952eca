"""Whether an instant is inside an EventFilter's ``when`` windows, as Sensu Go computes it
(core/v2 ``TimeWindowWhen.InWindows`` and ``TimeWindowTimeRange.InWindow``), quirks included:

- the windows of ``all`` and of the instant's weekday are tried, in UTC;
- both ends are included: ``9:00AM`` to ``5:00PM`` holds 17:00:00 but not 17:00:01;
- a window whose end is before its begin crosses midnight and is placed on the instant's own
  date: 3:00PM to 8:00AM on a Monday holds Monday 00:00 to 08:00 and 15:00 to midnight, so the
  early morning after the last day named belongs to that next day's own windows, not this one's.

No clock: the instant is a parameter (seconds since the epoch).
"""

from __future__ import annotations

from pipeline.model.time_window import DAYS, TimeWindowTimeRange, TimeWindowWhen, parse_kitchen

_DAY = 86_400
# Go's time.Weekday of the epoch's day (1970-01-01, a Thursday), Sunday 0
_EPOCH_WEEKDAY = 4
#: Sensu's end of a day: 23:59:59.999999999
_LAST_INSTANT = _DAY - 1e-9


def in_window(window: TimeWindowTimeRange, now: float) -> bool:
    """Whether ``now`` is inside one window on its own UTC date (ValueError for a bad time)."""
    moment = now % _DAY
    begin: float = parse_kitchen(window.begin)
    end: float = parse_kitchen(window.end)
    if end < begin:  # crosses midnight: the part of it on this date
        if moment < end:
            begin = 0
        else:
            end = _LAST_INSTANT
    return begin <= moment <= end


def in_windows(when: TimeWindowWhen, now: float) -> bool:
    """Whether ``now`` is inside a window of ``all`` or of its weekday."""
    weekday = DAYS[1 + (int(now // _DAY) + _EPOCH_WEEKDAY) % 7]
    return any(in_window(window, now) for window in [*when.windows("all"), *when.windows(weekday)])

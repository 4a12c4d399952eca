"""An EventFilter's ``when`` (Sensu Go's ``TimeWindowWhen``): daily windows of wall-clock time,
for every day (``all``) or a weekday, in UTC.

Each window is ``{begin, end}`` in Go's ``time.Kitchen`` layout, ``3:04PM``; spaces are removed
first, as Sensu Go does for Sensu 1.x's ``3:00 PM``. Whether an instant is inside is
:func:`pipeline.core.time_windows.in_windows`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline.errors import ValidationError
from pipeline.model.codec import field

DAYS = ("all", "sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")

# Go's time.Kitchen, "3:04PM": an hour of one or two digits, two of minutes, AM or PM in capitals
_KITCHEN = re.compile(r"(\d{1,2}):(\d{2})(AM|PM)", re.ASCII)


def parse_kitchen(text: str) -> int:
    """Seconds after midnight of a ``3:04PM`` time (spaces ignored); ValueError naming the text
    when Go's ``time.Parse(time.Kitchen, ...)`` would refuse it."""
    match = _KITCHEN.fullmatch(text.replace(" ", ""))
    if match is None:
        raise ValueError(f"expected a time such as 9:00AM or 5:30PM, got {text!r}")
    hour, minute = int(match.group(1)), int(match.group(2))
    if hour > 12 or minute > 59:
        raise ValueError(f"hour or minute out of range in {text!r}")
    if match.group(3) == "PM" and hour < 12:
        hour += 12
    elif match.group(3) == "AM" and hour == 12:
        hour = 0
    return hour * 3600 + minute * 60


@dataclass(slots=True)
class TimeWindowTimeRange:
    begin: str = field("")
    end: str = field("")

    def validate(self, path: str) -> None:
        for name in ("begin", "end"):
            try:
                parse_kitchen(getattr(self, name))
            except ValueError as exc:
                raise ValidationError(f"{path}.{name}", str(exc)) from None


@dataclass(slots=True)
class TimeWindowDays:
    all: list[TimeWindowTimeRange] = field([], omitempty=True)
    sunday: list[TimeWindowTimeRange] = field([], omitempty=True)
    monday: list[TimeWindowTimeRange] = field([], omitempty=True)
    tuesday: list[TimeWindowTimeRange] = field([], omitempty=True)
    wednesday: list[TimeWindowTimeRange] = field([], omitempty=True)
    thursday: list[TimeWindowTimeRange] = field([], omitempty=True)
    friday: list[TimeWindowTimeRange] = field([], omitempty=True)
    saturday: list[TimeWindowTimeRange] = field([], omitempty=True)


@dataclass(slots=True)
class TimeWindowWhen:
    """The windows by day; an EventFilter with one is checked against them before its expressions."""

    days: TimeWindowDays = field(factory=TimeWindowDays)

    def windows(self, day: str) -> list[TimeWindowTimeRange]:
        return list(getattr(self.days, day))

    @property
    def empty(self) -> bool:
        return not any(self.windows(day) for day in DAYS)

    def validate(self, path: str) -> None:
        for day in DAYS:
            for i, window in enumerate(self.windows(day)):
                window.validate(f"{path}.days.{day}[{i}]")

"""A check's subdue window (Sensu Go 6's ``TimeWindowRepeated``): when it must not run.

``begin`` and ``end`` are RFC 3339 instants with their UTC offset; the offset written is the
time zone of the window for good (a fixed offset, as Go's parser gives: no daylight saving
time). Without ``repeat`` the window is the one span from ``begin`` to ``end``; with it, the
span's clock times come back on the days ``repeat`` names, from ``begin`` on. Whether an
instant is inside is :func:`pipeline.core.subdues.in_window`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from pipeline.errors import ValidationError
from pipeline.model.codec import field

#: Sensu Go's repeat periods (``validRepeatPeriods``), by their exact spelling.
REPEAT_PERIODS = ("annually", "monthly", "weekly", "weekdays", "weekends", "daily", "sundays", "mondays",
                  "tuesdays", "wednesdays", "thursdays", "fridays", "saturdays")  # fmt: skip

# Go's time.RFC3339 layout: a 'T', seconds, optional fraction, and 'Z' or a +hh:mm offset.
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|([+-])(\d{2}):(\d{2}))", re.ASCII
)


def parse_rfc3339(text: str) -> datetime:
    """``text`` as an aware datetime in the fixed offset it is written in (ValueError when it is
    not RFC 3339 with a time zone)."""
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError(f"expected RFC 3339 with a time zone (2027-03-28T22:00:00+01:00), got {text!r}")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    micro = int((match.group(7) or "0").ljust(6, "0")[:6])
    if match.group(8) == "Z":
        zone = UTC
    else:
        hours, minutes = int(match.group(10)), int(match.group(11))
        if hours > 23 or minutes > 59:
            raise ValueError(f"time zone offset out of range in {text!r}")
        sign = -1 if match.group(9) == "-" else 1
        zone = timezone(sign * timedelta(hours=hours, minutes=minutes))
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=zone)


@dataclass(slots=True)
class TimeWindowRepeated:
    """One subdue window of a check (``subdues`` entries)."""

    begin: str = field("")
    end: str = field("")
    repeat: list[str] = field([])

    @property
    def begin_time(self) -> datetime:
        return parse_rfc3339(self.begin)

    @property
    def end_time(self) -> datetime:
        return parse_rfc3339(self.end)

    def validate(self, path: str) -> None:
        """Sensu Go's ``TimeWindowRepeated.Validate``, naming the field."""
        times = {}
        for name in ("begin", "end"):
            try:
                times[name] = parse_rfc3339(getattr(self, name))
            except ValueError as exc:
                raise ValidationError(f"{path}.{name}", str(exc)) from None
        if times["end"] < times["begin"]:
            raise ValidationError(f"{path}.end", f"must not be before begin ({self.end} < {self.begin})")
        for i, period in enumerate(self.repeat):
            if period not in REPEAT_PERIODS:
                raise ValidationError(
                    f"{path}.repeat[{i}]", f"expected one of {', '.join(REPEAT_PERIODS)}, got {period!r}"
                )

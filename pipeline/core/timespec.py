"""Points in time as operators write them: ``1h`` ago, seconds since the epoch, or ISO-8601."""

from __future__ import annotations

import re
from datetime import datetime

from pipeline.core.numbers import UNIX_SECONDS, parse_int

# ASCII digits only: ``\d`` and ``str.isdigit`` also take ``²``, which ``int`` refuses
_AGO = re.compile(r"\A([0-9]+)([smhdw])\Z")
_EPOCH = re.compile(r"\A[0-9]+\Z")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_time(text: str, now: float) -> int:
    """``90s``/``30m``/``1h``/``2d``/``1w`` before ``now``, epoch seconds, or an ISO-8601 time with a
    zone, within :data:`UNIX_SECONDS` (raises ValueError with the accepted forms or the range)."""
    text = text.strip()
    if match := _AGO.match(text):
        # the amount's digits are bounded before int(): 10**5000 would not even parse
        amount = parse_int(match.group(1), UNIX_SECONDS)
        seconds = None if amount is None else int(now) - amount * _SECONDS[match.group(2)]
    elif _EPOCH.match(text):
        seconds = parse_int(text, UNIX_SECONDS)
    else:
        seconds = _iso_seconds(text)
    if seconds is None or not UNIX_SECONDS[0] <= seconds <= UNIX_SECONDS[1]:
        raise ValueError(f"{_shown(text)} is out of range ({UNIX_SECONDS[0]}..{UNIX_SECONDS[1]})")
    return seconds


def _iso_seconds(text: str) -> int:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise ValueError(f"{_shown(text)} is not a time: use 1h, 30m, 2d (ago), epoch seconds, or ISO-8601 with a zone")
    return int(parsed.timestamp())


def _shown(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:40] + "...")


def parse_duration(text: str) -> int:
    """``90s``/``30m``/``1h``/``2d``/``1w`` as seconds (a silence's length, say), within
    :data:`UNIX_SECONDS` (raises ValueError with the accepted forms)."""
    match = _AGO.match(text.strip())
    amount = None if match is None else parse_int(match.group(1), UNIX_SECONDS)
    if match is None or amount is None or amount * _SECONDS[match.group(2)] > UNIX_SECONDS[1]:
        raise ValueError(f"{_shown(text)} is not a duration: use 90s, 30m, 2h, 1d or 1w")
    return amount * _SECONDS[match.group(2)]

"""Points in time as operators write them: ``1h`` ago, seconds since the epoch, or ISO-8601."""

from __future__ import annotations

import re
from datetime import datetime

_AGO = re.compile(r"\A(\d+)([smhdw])\Z")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_time(text: str, now: float) -> int:
    """``90s``/``30m``/``1h``/``2d``/``1w`` before ``now``, epoch seconds, or an ISO-8601 time with a
    zone (raises ValueError with the accepted forms)."""
    text = text.strip()
    if match := _AGO.match(text):
        return int(now) - int(match.group(1)) * _SECONDS[match.group(2)]
    if text.isdigit():
        return int(text)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise ValueError(f"{text!r} is not a time: use 1h, 30m, 2d (ago), epoch seconds, or ISO-8601 with a zone")
    return int(parsed.timestamp())

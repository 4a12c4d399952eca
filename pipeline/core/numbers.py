"""Numbers read from text, by one strict set of rules for every port: ASCII digits only (Python's
``str.isdigit`` and ``\\d`` also take ``²`` and other scripts' digits, which ``int`` then
refuses), finite, and in the range the caller names. Pure.

Each reader returns None for text that is not such a number, so that a parser can refuse the
one line or field with its own error and go on.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # a type only: the model's import costs a command line 60 ms
    from pipeline.model.codec import Bounds

#: Unix seconds a calendar can show (1970 to the end of 9999): what ``time.gmtime`` and
#: ``datetime`` take on every platform, and far inside int64.
UNIX_SECONDS: Bounds = (0, 253_402_300_799)

_INTEGER = re.compile(r"[+-]?[0-9]+\Z", re.ASCII)
#: The decimal forms JavaScript's ``Number()`` reads (StatsD values), surrounding blanks allowed.
_DECIMAL = re.compile(r"\s*[+-]?([0-9]+\.?[0-9]*([eE][+-]?[0-9]+)?|\.[0-9]+([eE][+-]?[0-9]+)?)\s*\Z", re.ASCII)


def parse_int(text: str, bounds: Bounds) -> int | None:
    """The integer ``text`` spells (an optional sign, then ASCII digits), if it is within
    ``bounds`` (inclusive)."""
    low, high = bounds
    # Longer than the bounds' digits (plus a sign and leading zeros' worth) cannot be in range,
    # and Python refuses to convert more than 4300 digits at all.
    if len(text) > len(str(max(abs(low), abs(high)))) + 8 or not _INTEGER.match(text):
        return None
    value = int(text)
    return value if low <= value <= high else None


def parse_decimal(text: str) -> float | None:
    """The finite number ``text`` spells in decimal (``12``, ``-1.5``, ``.5``, ``3e2``)."""
    if len(text) > 400 or not _DECIMAL.match(text):
        return None
    value = float(text)
    return value if math.isfinite(value) else None  # 1e999 reads as infinity

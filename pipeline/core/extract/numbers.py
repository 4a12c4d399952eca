"""Numbers as Go's strconv reads them (``ParseFloat``, ``ParseInt``), for the metric parsers."""

from __future__ import annotations

import math
import re

# ASCII digits only, as Go reads them (Python's \d also takes other scripts' digits).
_FLOAT = re.compile(r"[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?|[iI]nf(inity)?|NaN)\Z", re.ASCII)
_INT = re.compile(r"[+-]?\d+\Z", re.ASCII)


def parse_float(text: str) -> float | None:
    """The float in ``text``, or None; accepts what Go's ParseFloat accepts (Inf, NaN, exponents)."""
    if not _FLOAT.match(text):
        return None
    value = float(text)
    return value if not math.isnan(value) or text.lstrip("+-") == "NaN" else None


def parse_int(text: str) -> int | None:
    """The integer in ``text``, or None; like Go's ParseInt, None past int64 (or 4300 digits,
    beyond which Python refuses to convert)."""
    if len(text) > 20 or not _INT.match(text):
        return None
    value = int(text)
    return value if -(2**63) <= value < 2**63 else None

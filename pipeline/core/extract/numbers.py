"""Numbers as Go's strconv reads them (``ParseFloat``, ``ParseInt``), for the metric parsers."""

from __future__ import annotations

import math
import re

_FLOAT = re.compile(r"[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?|[iI]nf(inity)?|NaN)\Z")
_INT = re.compile(r"[+-]?\d+\Z")


def parse_float(text: str) -> float | None:
    """The float in ``text``, or None; accepts what Go's ParseFloat accepts (Inf, NaN, exponents)."""
    if not _FLOAT.match(text):
        return None
    value = float(text)
    return value if not math.isnan(value) or text.lstrip("+-") == "NaN" else None


def parse_int(text: str) -> int | None:
    return int(text) if _INT.match(text) else None

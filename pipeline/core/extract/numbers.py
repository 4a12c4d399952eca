"""Numbers as Go's strconv reads them (``ParseFloat``, ``ParseInt`` of 64 bits), for the metric
parsers: ASCII digits only (``\\d`` also takes other scripts' digits), and a number past the
type's range is an error (Go's ``ErrRange``), never a value the event could not carry."""

from __future__ import annotations

import re

from pipeline.core.numbers import parse_int as parse_bounded
from pipeline.model.codec import INT64  # as Go's ParseInt(text, 10, 64)
from pipeline.model.go_float import parse_go_float

_INT = re.compile(r"[+-]?[0-9]+\Z")


#: The float in a text, or None: what Go's ParseFloat accepts (Inf, NaN, exponents), refusing
#: what it refuses (``1e400``, ErrRange), as the parsers' Sensu Go counterparts read values.
parse_float = parse_go_float


def parse_int(text: str) -> int | None:
    """The int64 in ``text``, or None (not an integer, or out of range)."""
    return parse_bounded(text, INT64)


def int_problem(what: str, text: str) -> str:
    """Why :func:`parse_int` refused ``text``, for the line's error."""
    shown = text if len(text) <= 30 else text[:27] + "..."
    if _INT.match(text):
        return f"{what} {shown!r} is out of range ({INT64[0]}..{INT64[1]})"
    return f"{what} {shown!r} is not an integer"

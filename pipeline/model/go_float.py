"""A float as Go's ``strconv.ParseFloat(text, 64)`` reads one, for the fields Sensu Go parses so
(metric thresholds' ``min`` and ``max``) and the metric parsers. Pure.

Python's ``float`` takes more: other scripts' digits (``٣``), ``1_0``, surrounding blanks. Go
refuses those; it takes ``Inf``, ``infinity`` and ``NaN`` in any case, and exponents, and refuses
a finite number too large for a float (``1e400``: ``ErrRange``) where Python gives infinity.
"""

from __future__ import annotations

import math
import re

#: A decimal number or an infinity, signed or not, or a NaN, unsigned (Go's ``special``). Case is
#: ignored in ASCII only: Unicode's would let inf with a dotless i (U+0131) through to ``float``, which refuses it.
_FLOAT = re.compile(
    r"([+-]?([0-9]+\.?[0-9]*([eE][+-]?[0-9]+)?|\.[0-9]+([eE][+-]?[0-9]+)?|inf(inity)?)|nan)\Z", re.I | re.ASCII
)


def parse_go_float(text: str) -> float | None:
    """The float in ``text``, or None where Go's ParseFloat returns an error."""
    if len(text) > 400 or not _FLOAT.match(text):
        return None
    value = float(text)
    if math.isinf(value) and "inf" not in text.lower():
        return None  # ErrRange: a finite number past float64
    return value

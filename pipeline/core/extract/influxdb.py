"""``influxdb_line``: ``measurement[,tag=v...] field=v[,field=v...] [timestamp]``.

One point per field, named ``measurement.field``; line tags come before
``output_metric_tags``. A timestamp in ns, µs or ms becomes seconds (its first ten digits, as
Sensu Go reads it); without one, the check's ``executed``. Beyond Sensu Go, which drops a
whole line for any non-float field: integer fields (``12i``, ``12u``) are numbers, boolean
fields are 1 and 0, string fields are skipped, and double-quoted strings may hold spaces.
Escapes as in the line protocol: ``\\ ``, ``\\,``, ``\\=``, ``\\"`` and ``\\\\``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from pipeline.core.extract.numbers import int_problem, parse_float, parse_int
from pipeline.core.extract.result import Extraction, copy_tags, lines
from pipeline.model import MetricPoint, MetricTag

_TRUE = frozenset({"t", "T", "true", "True", "TRUE"})
_FALSE = frozenset({"f", "F", "false", "False", "FALSE"})


class LineError(ValueError):
    pass


def split_unescaped(text: str, separator: str, *, quotes: bool = False) -> list[str]:
    """Split on ``separator`` where it is neither escaped nor (with ``quotes``) inside "..."."""
    parts, current, i, quoted = [], [], 0, False
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            current.append(text[i : i + 2])
            i += 2
            continue
        if quotes and char == '"':
            quoted = not quoted
        if char == separator and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    if quoted:
        raise LineError("unterminated string")
    parts.append("".join(current))
    return parts


def unescape(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in ' ,="\\':
            out.append(text[i + 1])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _pair(item: str, what: str) -> tuple[str, str]:
    parts = split_unescaped(item, "=")
    if len(parts) != 2 or not parts[0]:
        raise LineError(f"{what} {item!r} is not key=value")
    return unescape(parts[0]), parts[1]


def _field_value(raw: str) -> float | None:
    """The number a field holds; None for a string field."""
    if raw.startswith('"'):
        return None
    if raw in _TRUE or raw in _FALSE:
        return 1.0 if raw in _TRUE else 0.0
    if raw[-1:] in ("i", "u") and parse_int(raw[:-1]) is not None:
        return float(raw[:-1])
    value = parse_float(raw)
    if value is None:
        raise LineError(f"field value {raw!r} is not a number, boolean or string")
    if not math.isfinite(value):  # Go reads Inf and NaN; no event can carry them
        raise LineError(f"field value {raw!r} is not a finite number")
    return value


def _timestamp(raw: str | None, now: int) -> int:
    if raw is None:
        return now
    if parse_int(raw) is None:
        raise LineError(int_problem("timestamp", raw))
    return int(raw[:10]) if len(raw.lstrip("-")) > 10 else int(raw)


def parse_line(line: str, now: int, tags: Sequence[MetricTag]) -> list[MetricPoint]:
    sections = [s for s in split_unescaped(line, " ", quotes=True) if s]
    if len(sections) not in (2, 3):
        raise LineError(f"expected 'measurement[,tags] fields [timestamp]', got {len(sections)} parts")
    series, *tag_items = split_unescaped(sections[0], ",")
    line_tags = [MetricTag(*_pair(item, "tag")) for item in tag_items]
    point_tags = [MetricTag(t.name, unescape(t.value)) for t in line_tags] + copy_tags(tags)
    timestamp = _timestamp(sections[2] if len(sections) == 3 else None, now)
    points = []
    for item in split_unescaped(sections[1], ",", quotes=True):
        key, raw = _pair(item, "field")
        value = _field_value(raw)
        if value is not None:
            name = f"{unescape(series)}.{key}"
            points.append(MetricPoint(name=name, value=value, timestamp=timestamp, tags=copy_tags(point_tags)))
    return points


def parse(output: str, now: int, tags: Sequence[MetricTag] = ()) -> Extraction:
    result = Extraction()
    for number, line in lines(output):
        if line.startswith("#"):
            continue
        try:
            result.points.extend(parse_line(line, now, tags))
        except LineError as exc:
            result.reject(number, line, str(exc))
    return result

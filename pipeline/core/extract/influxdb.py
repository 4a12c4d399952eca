"""``influxdb_line``: ``measurement[,tag=v...] field=v[,field=v...] [timestamp]``.

One point per field, named ``measurement.field``; line tags come before
``output_metric_tags``. A timestamp in ns, µs or ms becomes seconds (its first ten digits, as
Sensu Go reads it); without one, the check's ``executed``. Beyond Sensu Go, which drops a
whole line for any non-float field: integer fields (``12i``, ``12u``) are numbers, boolean
fields are 1 and 0, string fields are skipped, and a double-quoted string value may hold
spaces and commas. Only a field *value* opens a string: a ``"`` in a measurement, tag or field
key is a literal character (``te\\ mp\\,er\\=at"ure=82`` is the field ``te mp,er=at"ure``, as in
Sensu Go 6.10). Escapes as in the line protocol: ``\\ ``, ``\\,``, ``\\=``, ``\\"`` and ``\\\\``;
a backslash before any other character is kept (Sensu Go drops it).
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


def split_unescaped(text: str, separator: str) -> list[str]:
    """Split on ``separator`` where it is not escaped (escapes stay, for :func:`unescape`)."""
    parts, current, i = [], [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            current.append(text[i : i + 2])
            i += 2
        elif text[i] == separator:
            parts.append("".join(current))
            current = []
            i += 1
        else:
            current.append(text[i])
            i += 1
    parts.append("".join(current))
    return parts


def _scan(line: str, i: int, stops: str) -> int:
    """The index of the first unescaped character of ``stops`` at or after ``i`` (or the end)."""
    while i < len(line) and line[i] not in stops:
        i += 2 if line[i] == "\\" else 1
    return min(i, len(line))


def _scan_string(line: str, i: int) -> int:
    """The index just past the closing quote of the string field value opening at ``i``."""
    i += 1
    while i < len(line) and line[i] != '"':
        i += 2 if line[i] == "\\" else 1
    if i >= len(line):
        raise LineError("unterminated string")
    return i + 1


def _skip_spaces(line: str, i: int) -> int:
    while i < len(line) and line[i] == " ":
        i += 1
    return i


def _fields(line: str, i: int) -> tuple[list[tuple[str, str]], int]:
    """The ``key=value`` pairs of the field set starting at ``i``, raw, and where it ends.

    Only a field *value* may be a double-quoted string: a quote in a measurement, a tag or a
    field key is a literal character, as the line protocol and Sensu Go 6.10 read it."""
    pairs = []
    while True:
        key_end = _scan(line, i, "=, ")
        if key_end >= len(line) or line[key_end] != "=" or key_end == i:
            raise LineError(f"field {line[i:key_end]!r} is not key=value")
        value_start = key_end + 1
        if line[value_start : value_start + 1] == '"':
            end = _scan_string(line, value_start)
        else:
            end = _scan(line, value_start, ", ")
        pairs.append((line[i:key_end], line[value_start:end]))
        if end < len(line) and line[end] == ",":
            i = end + 1
            continue
        return pairs, end


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
    series_end = _scan(line, 0, " ")
    fields_start = _skip_spaces(line, series_end)
    if fields_start >= len(line):
        raise LineError("expected 'measurement[,tags] fields [timestamp]', got 1 parts")
    pairs, fields_end = _fields(line, fields_start)
    rest = line[fields_end:].strip(" ")
    if " " in rest:
        raise LineError(f"expected 'measurement[,tags] fields [timestamp]', got {2 + len(rest.split())} parts")
    series, *tag_items = split_unescaped(line[:series_end], ",")
    line_tags = [MetricTag(*_pair(item, "tag")) for item in tag_items]
    point_tags = [MetricTag(t.name, unescape(t.value)) for t in line_tags] + copy_tags(tags)
    timestamp = _timestamp(rest or None, now)
    points = []
    for key, raw in pairs:
        value = _field_value(raw)
        if value is not None:
            name = f"{unescape(series)}.{unescape(key)}"
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

"""``nagios_perfdata``: ``'label'=value[UOM];warn;crit;min;max`` items after ``|``.

Follows the Nagios plugin API where Sensu Go does not: perfdata may follow a ``|`` on the
first line and on the first later line that has one (every line after that is perfdata
too); a quoted label may contain spaces (``''`` is a literal quote; the quotes are not part
of the name); ``1.5e3`` is 1500; a value of ``U`` gives no point. As Sensu Go: spaces in a
label become ``_``, the unit is dropped and the value kept as printed, a trailing comma is
tolerated (``loss=0, rta=0.80``), every point is stamped with the check's ``executed``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pipeline.core.extract.numbers import parse_float
from pipeline.core.extract.result import Extraction, copy_tags
from pipeline.model import MetricPoint, MetricTag

_ITEM = re.compile(r"'(?:[^']|'')*'=\S*|\S+")
_NUMBER = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")


def perfdata_lines(output: str) -> list[tuple[int, str]]:
    """The perfdata parts of the output, with their line numbers."""
    found = []
    in_perfdata = False
    for number, line in enumerate(output.splitlines(), start=1):
        if in_perfdata:
            found.append((number, line))
        elif "|" in line:
            found.append((number, line.split("|", 1)[1]))
            in_perfdata = number > 1  # after a long-text '|', the rest is all perfdata
    return found


def _point(item: str, now: int, tags: Sequence[MetricTag]) -> MetricPoint | None:
    """The point of one perfdata item; None for 'U'; ValueError when it cannot be read."""
    if item.startswith("'"):
        label, _, field = item[1:].partition("'=")
        label = label.replace("''", "'")
    else:
        label, sep, field = item.partition("=")
        if not sep:
            raise ValueError("expected label=value")
    if not label:
        raise ValueError("empty label")
    raw = field.split(";", 1)[0]
    if raw == "U":
        return None
    match = _NUMBER.match(raw)
    if match is None:
        raise ValueError(f"value {raw!r} is not a number")
    value = parse_float(match.group())
    if value is None:  # 1e400 or 400 digits: past a float's range
        raise ValueError(f"value {raw[:30]!r} is out of range")
    name = label.replace(" ", "_")
    return MetricPoint(name=name, value=value, timestamp=now, tags=copy_tags(tags))


def parse(output: str, now: int, tags: Sequence[MetricTag] = ()) -> Extraction:
    result = Extraction()
    for number, text in perfdata_lines(output):
        for item in _ITEM.findall(text):
            try:
                point = _point(item, now, tags)
            except ValueError as exc:
                result.reject(number, item, str(exc))
                continue
            if point is not None:
                result.points.append(point)
    return result

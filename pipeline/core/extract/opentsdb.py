"""``opentsdb_line``: ``name timestamp value tag=v [tag=v ...]`` (an optional ``put`` first).

As Sensu Go: at least one tag; a 13-digit timestamp is milliseconds and becomes seconds;
line tags come before ``output_metric_tags``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from pipeline.core.extract.numbers import int_problem, parse_float, parse_int
from pipeline.core.extract.result import Extraction, copy_tags, key_value_tags, lines
from pipeline.model import MetricPoint, MetricTag


def parse(output: str, now: int, tags: Sequence[MetricTag] = ()) -> Extraction:
    result = Extraction()
    for number, line in lines(output):
        fields = line.split()
        if fields and fields[0] == "put":  # the OpenTSDB telnet command, as collectors print it
            fields = fields[1:]
        if len(fields) < 4:
            result.reject(number, line, "expected 'name timestamp value tag=value ...' (at least one tag)")
            continue
        name, raw_timestamp, raw_value, *raw_tags = fields
        timestamp, value = parse_int(raw_timestamp), parse_float(raw_value)
        if timestamp is None:
            result.reject(number, line, int_problem("timestamp", raw_timestamp))
            continue
        if value is None:
            result.reject(number, line, f"value {raw_value!r} is not a number")
            continue
        if not math.isfinite(value):  # Go reads Inf and NaN; no event can carry them
            result.reject(number, line, f"value {raw_value!r} is not a finite number")
            continue
        if len(raw_timestamp.lstrip("+-")) == 13:
            timestamp //= 1000
        try:
            point_tags = key_value_tags(raw_tags) + copy_tags(tags)
        except ValueError as exc:
            result.reject(number, line, str(exc))
            continue
        result.points.append(MetricPoint(name=name, value=value, timestamp=timestamp, tags=point_tags))
    return result

"""``graphite_plaintext``: ``path value timestamp`` lines; tags as ``path;k=v;k2=v2``.

As Sensu Go: exactly three fields, a float value, an integer timestamp in seconds kept as
given. Unlike Sensu Go, fields may be separated by any run of spaces or tabs, and Graphite
1.1's tags in the path (``path;k=v``) become tags after ``output_metric_tags`` (Sensu Go keeps
the whole path, ``;`` included, as the name).
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
        if len(fields) != 3:
            result.reject(number, line, f"expected 'path value timestamp', got {len(fields)} fields")
            continue
        path, raw_value, raw_timestamp = fields
        value, timestamp = parse_float(raw_value), parse_int(raw_timestamp)
        if value is None:
            result.reject(number, line, f"value {raw_value!r} is not a number")
            continue
        if not math.isfinite(value):  # Go reads Inf and NaN; no event can carry them
            result.reject(number, line, f"value {raw_value!r} is not a finite number")
            continue
        if timestamp is None:
            result.reject(number, line, int_problem("timestamp", raw_timestamp))
            continue
        name, *parts = path.split(";")
        try:
            point_tags = copy_tags(tags) + key_value_tags(parts)
        except ValueError as exc:
            result.reject(number, line, str(exc))
            continue
        result.points.append(MetricPoint(name=name, value=value, timestamp=timestamp, tags=point_tags))
    return result

"""``prometheus_text``: the Prometheus text exposition format.

As Sensu Go: every sample gets ``prom_type`` (the family's type, ``untyped`` by default)
and, when the family has HELP, ``prom_help``; ``output_metric_tags`` replace labels of the
same name; NaN samples are dropped; a timestamp (ms) becomes seconds, and samples without
one get the check's ``executed``. Summary and histogram samples (``_sum``, ``_count``,
``_bucket``) belong to their family. Beyond Sensu Go: the last line needs no newline, a bad
line is reported and skipped instead of ending the parse, and tags keep the order of the
labels in the output.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from pipeline.core.extract.numbers import int_problem, parse_float, parse_int
from pipeline.core.extract.result import Extraction, lines
from pipeline.model import MetricPoint, MetricTag

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(,|(?=}))')
_SUFFIXES = ("_sum", "_count", "_bucket")
_TYPES = {"counter", "gauge", "summary", "histogram", "untyped"}


class SampleError(ValueError):
    pass


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), text)


def parse_sample(line: str) -> tuple[str, list[MetricTag], str, str | None]:
    """``name{labels} value [timestamp]`` -> name, labels, raw value, raw timestamp."""
    match = _NAME.match(line)
    if match is None:
        raise SampleError("expected a metric name")
    name, rest = match.group(), line[match.end() :]
    labels = []
    if rest.startswith("{"):
        position = 1
        while not rest[position:].lstrip().startswith("}"):
            label = _LABEL.match(rest, position)
            if label is None:
                raise SampleError("malformed labels")
            labels.append(MetricTag(label.group(1), _unescape(label.group(2))))
            position = label.end()
        rest = rest[rest.index("}", position) + 1 :]
    fields = rest.split()
    if len(fields) not in (1, 2):
        raise SampleError("expected a value and an optional timestamp after the labels")
    return name, labels, fields[0], fields[1] if len(fields) == 2 else None


def _family(name: str, types: dict[str, str]) -> str:
    for suffix in _SUFFIXES:
        base = name.removesuffix(suffix)
        if base != name and types.get(base) in ("summary", "histogram"):
            return base
    return name


def _with_tags(labels: list[MetricTag], extra: Sequence[MetricTag]) -> list[MetricTag]:
    tags = {t.name: t.value for t in labels}
    for tag in extra:
        tags[tag.name] = tag.value  # output_metric_tags win over labels
    return [MetricTag(k, v) for k, v in tags.items()]


def parse(output: str, now: int, tags: Sequence[MetricTag] = ()) -> Extraction:
    result = Extraction()
    types: dict[str, str] = {}
    helps: dict[str, str] = {}
    for number, line in lines(output):
        if line.startswith("#"):
            words = line[1:].split(None, 2)
            if len(words) == 3 and words[0] == "TYPE" and words[2].strip() in _TYPES:
                types[words[1]] = words[2].strip()
            elif len(words) >= 2 and words[0] == "HELP":
                helps[words[1]] = _unescape(words[2]) if len(words) == 3 else ""
            continue
        try:
            name, labels, raw_value, raw_timestamp = parse_sample(line)
        except SampleError as exc:
            result.reject(number, line, str(exc))
            continue
        value = parse_float(raw_value)
        if value is None:
            result.reject(number, line, f"value {raw_value!r} is not a number")
            continue
        if math.isnan(value):
            continue
        if math.isinf(value):  # an event cannot carry it (its result would be refused whole)
            result.reject(number, line, f"value {raw_value!r} is not a finite number")
            continue
        ms = parse_int(raw_timestamp) if raw_timestamp is not None else None
        if raw_timestamp is not None and ms is None:
            result.reject(number, line, int_problem("timestamp", raw_timestamp))
            continue
        family = _family(name, types)
        labels.append(MetricTag("prom_type", types.get(family, "untyped")))
        if family in helps:
            labels.append(MetricTag("prom_help", helps[family]))
        timestamp = now if ms is None else ms // 1000
        result.points.append(MetricPoint(name=name, value=value, timestamp=timestamp, tags=_with_tags(labels, tags)))
    return result

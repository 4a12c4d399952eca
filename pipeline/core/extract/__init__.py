"""Metric extraction from check output, one module per ``output_metric_format``. Pure.

Each parser takes the output, the time to stamp points that carry none (the check's
``executed``, in seconds) and the check's ``output_metric_tags``, and returns the points and
a readable error for every line it could not use. A bad line never stops the others.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pipeline.core.extract import graphite, influxdb, nagios, opentsdb, prometheus
from pipeline.core.extract.result import Extraction
from pipeline.model import MetricTag

Parser = Callable[[str, int, Sequence[MetricTag]], Extraction]

PARSERS: dict[str, Parser] = {
    "nagios_perfdata": nagios.parse,
    "graphite_plaintext": graphite.parse,
    "influxdb_line": influxdb.parse,
    "opentsdb_line": opentsdb.parse,
    "prometheus_text": prometheus.parse,
}


def extract(output_format: str, output: str, now: int, tags: Sequence[MetricTag] = ()) -> Extraction:
    """Points of ``output`` in ``output_format`` (one of :data:`PARSERS`)."""
    return PARSERS[output_format](output, now, tags)


__all__ = ["PARSERS", "Extraction", "extract"]

"""The InfluxDB handler: every metric point of an event, as line protocol, to InfluxDB's HTTP API.

In-process as ``type: plugin, plugin: influxdb``, and as the pipe program ``handlers/influxdb``
(the same options as flags). Options ``url`` and ``timeout`` (default 10 s), then either
InfluxDB 1.x's ``database`` (with ``username`` and ``password`` sent as basic auth when given),
posted to ``/write``, or InfluxDB 2.x's ``org``, ``bucket`` and ``token``, posted to
``/api/v2/write``. Both with ``precision=s``.

One line per point: the measurement is the point's name, the tags are the point's own plus
``entity`` and ``check`` (a point's own tag of that name wins), the one field is
``value``, the timestamp is the point's (else the event's) in seconds. Line protocol cannot
hold an empty tag value or a non-finite number, so such tags and points are left out. An event
without points sends nothing.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from pipeline.model import Event, MetricPoint
from pipeline.plugins import run_pipe_program
from pipeline.plugins.webhook import check_options, post, timeout_option, url_option

V1_OPTIONS = {"database", "username", "password"}
V2_OPTIONS = {"org", "bucket", "token"}

_CONTROL = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\f": "\\f"}
_MEASUREMENT = str.maketrans({"\\": "\\\\", ",": "\\,", " ": "\\ ", **_CONTROL})
_KEY_OR_VALUE = str.maketrans({"\\": "\\\\", ",": "\\,", " ": "\\ ", "=": "\\=", **_CONTROL})


def escape_measurement(name: str) -> str:
    return name.translate(_MEASUREMENT)


def escape_tag(text: str) -> str:
    """A tag key or value escaped for line protocol (commas, spaces and equals signs)."""
    return text.translate(_KEY_OR_VALUE)


def line_of(point: MetricPoint, event: Event) -> str | None:
    """``point`` as one line of protocol, or None when line protocol cannot hold it."""
    if not point.name or not math.isfinite(point.value):
        return None
    tags = {"entity": event.entity_name, "check": event.check_name}
    tags.update((tag.name, tag.value) for tag in point.tags)
    # InfluxDB stores tags sorted by key; sending them sorted spares it the sort.
    tag_text = "".join(f",{escape_tag(k)}={escape_tag(v)}" for k, v in sorted(tags.items()) if k and v)
    timestamp = point.timestamp or event.timestamp
    return f"{escape_measurement(point.name)}{tag_text} value={point.value!r}" + (f" {timestamp}" if timestamp else "")


def lines_of(event: Event) -> list[str]:
    points = event.metrics.points if event.metrics is not None else []
    return [line for point in points if (line := line_of(point, event)) is not None]


class InfluxDBHandler:
    """``handle`` writes an event's points with one POST; any answer but 2xx raises HandlerError."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        if V1_OPTIONS & set(options) and V2_OPTIONS & set(options):
            found = sorted((V1_OPTIONS | V2_OPTIONS) & set(options))
            raise ValueError(f"options {found} mix InfluxDB 1.x (database) and 2.x (org, bucket, token)")
        self.version = 2 if V2_OPTIONS & set(options) else 1
        if self.version == 1:
            check_options(options, {"url", "timeout", *V1_OPTIONS}, ["url", "database"])
        else:
            check_options(options, {"url", "timeout", *V2_OPTIONS}, ["url", "org", "bucket", "token"])
        self.timeout = timeout_option(options)
        base = url_option(options).rstrip("/")
        self.auth: tuple[str, str] | None = None
        self.headers = {"Content-Type": "text/plain; charset=utf-8"}
        if self.version == 1:
            self.url = f"{base}/write?{urlencode({'db': options['database'], 'precision': 's'})}"
            if ("username" in options) != ("password" in options):
                raise ValueError("options 'username' and 'password' go together")
            if "username" in options:
                self.auth = (str(options["username"]), str(options["password"]))
        else:
            query = urlencode({"org": options["org"], "bucket": options["bucket"], "precision": "s"})
            self.url = f"{base}/api/v2/write?{query}"
            self.headers["Authorization"] = f"Token {options['token']}"

    async def handle(self, event: Event) -> None:
        lines = lines_of(event)
        if lines:
            await post(self.url, "\n".join(lines).encode() + b"\n", self.headers, self.timeout, self.auth)


def main(argv: Sequence[str] | None = None) -> int:
    """The pipe program: one event as JSON on stdin."""
    parser = argparse.ArgumentParser(prog="influxdb", description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--timeout", type=float, default=10.0)
    v1 = parser.add_argument_group("InfluxDB 1.x")
    for name in ("database", "username", "password"):
        v1.add_argument(f"--{name}")
    v2 = parser.add_argument_group("InfluxDB 2.x")
    for name in ("org", "bucket", "token"):
        v2.add_argument(f"--{name}")
    args = parser.parse_args(argv)
    options = {k: v for k, v in vars(args).items() if v is not None}
    return run_pipe_program(parser, InfluxDBHandler, options, done=lambda event: f"wrote {len(lines_of(event))} points")

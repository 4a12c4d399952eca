"""The Graphite handler: every metric point of an event to Carbon's plaintext port.

In-process as ``type: plugin, plugin: graphite`` (options ``host``, ``port``, ``prefix``,
``retries``, ``timeout``), and as the pipe program ``handlers/graphite`` (the same options as
flags). Lines are ``name;tag=value;... value timestamp``: Graphite's tagged-series form with
tags in the order sent (a tag without value as ``;tag``, as etsy StatsD writes it), the value
printed as JavaScript prints numbers, so that StatsD series match etsy's byte for byte.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping, Sequence
from typing import Any

import trio

from pipeline.model import Event, MetricPoint
from pipeline.plugins import run_pipe_program


def js_number(value: float) -> str:
    """A number as JavaScript's ``String(n)`` prints it (etsy StatsD's Graphite output)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    text = repr(value)
    if "e" in text:
        mantissa, exponent = text.split("e")
        sign = "-" if exponent.startswith("-") else "+"
        text = f"{mantissa}e{sign}{int(exponent.lstrip('+-'))}"
    return text


def series(point: MetricPoint, prefix: str) -> str:
    name = f"{prefix}.{point.name}" if prefix else point.name
    for tag in point.tags:
        name += f";{tag.name}={tag.value}" if tag.value else f";{tag.name}"
    return name


def lines_of(event: Event, prefix: str = "") -> list[str]:
    points = event.metrics.points if event.metrics is not None else []
    return [f"{series(p, prefix)} {js_number(p.value)} {p.timestamp}\n" for p in points]


def _reason(exc: BaseException) -> str:
    """Why a connection failed: trio's connect error keeps the real ones in a group as its cause."""
    cause = exc.__cause__
    if isinstance(cause, BaseExceptionGroup):
        return "; ".join(str(e) for e in cause.exceptions)
    return str(exc) or "timed out"


class GraphiteHandler:
    """``handle`` writes an event's points; it retries with backoff, then raises."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        unknown = set(options) - {"host", "port", "prefix", "retries", "timeout"}
        if unknown:
            raise ValueError(f"unknown options {sorted(unknown)} (expected host, port, prefix, retries, timeout)")
        self.host = str(options.get("host", "127.0.0.1"))
        self.port = int(options.get("port", 2003))
        self.prefix = str(options.get("prefix", ""))
        self.retries = int(options.get("retries", 3))
        self.timeout = float(options.get("timeout", 5.0))

    async def handle(self, event: Event) -> None:
        lines = lines_of(event, self.prefix)
        if not lines:
            return
        payload = "".join(lines).encode()
        error: OSError | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                await trio.sleep(min(0.2 * 2 ** (attempt - 1), 5.0))
            try:
                with trio.fail_after(self.timeout):
                    stream = await trio.open_tcp_stream(self.host, self.port)
                    async with stream:
                        await stream.send_all(payload)
                return
            except (OSError, trio.TooSlowError, trio.BrokenResourceError) as exc:
                error = OSError(_reason(exc))
        raise OSError(f"could not write {len(lines)} points to {self.host}:{self.port}: {error}")


def main(argv: Sequence[str] | None = None) -> int:
    """The pipe program: one event as JSON on stdin."""
    parser = argparse.ArgumentParser(prog="graphite", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2003)
    parser.add_argument("--prefix", default="")
    parser.add_argument("--retries", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args(argv)

    def done(event: Event) -> str:
        return f"wrote {len(lines_of(event))} points to {args.host}:{args.port}"

    return run_pipe_program(parser, GraphiteHandler, vars(args), failures=(OSError,), done=done)

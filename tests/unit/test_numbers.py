"""One strict reading of numbers (ASCII digits, finite, in range), and the StatsD lines that
crashed the agent with Unicode digits or timestamps out of range: refused per line and counted."""

from __future__ import annotations

import math
from typing import Any

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from pipeline.agent.statsd import StatsdConfig, StatsdServer
from pipeline.core.numbers import UNIX_SECONDS, parse_decimal, parse_int
from pipeline.core.statsd.aggregate import Aggregator
from pipeline.core.statsd.parse import parse_datagram
from pipeline.model import Entity, Event, ObjectMeta

NOW = 1_700_000_000


@pytest.mark.parametrize(
    ("text", "value"),
    [("0", 0), ("42", 42), ("-5", -5), ("+7", 7), ("007", 7), ("4294967295", 4294967295), ("4294967296", None),
     ("²", None), ("٣", None), ("1²", None), ("", None), (" 1", None), ("1_000", None), ("1.0", None),
     ("9" * 5000, None), ("-1", -1)],
)  # fmt: skip
def test_parse_int_takes_ascii_digits_in_range_only(text: str, value: int | None) -> None:
    assert parse_int(text, (-10, 2**32 - 1)) == value


@pytest.mark.parametrize(
    ("text", "value"),
    [("1.5", 1.5), (" -2 ", -2.0), (".5", 0.5), ("3e2", 300.0), ("1e400", None), ("Infinity", None), ("nan", None),
     ("inf", None), ("٣", None), ("1²", None), ("", None), ("0x10", None), ("1" * 500, None)],
)  # fmt: skip
def test_parse_decimal_takes_finite_ascii_decimals_only(text: str, value: float | None) -> None:
    assert parse_decimal(text) == value


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("x:1|c|T²", "bad timestamp 'T²'"),
        ("_sc|svc|0|d:²", "bad service check timestamp 'd:²'"),
        ("x:1|c|T99999999999999999999999", "bad timestamp 'T99999999999999999999999'"),
        (f"x:1|c|T{UNIX_SECONDS[1] + 1}", f"bad timestamp 'T{UNIX_SECONDS[1] + 1}'"),
        ("x:1|c|#a:b|T99999999999999999999999", "bad timestamp 'T99999999999999999999999'"),
        ("_e{1,1}:a|b|d:99999999999999999999", "bad event timestamp '99999999999999999999'"),
        ("x:٣|c", "counter value '٣' is not a number"),
        ("x:Infinity|g", "gauge value 'Infinity' is not a number"),
        ("x:1e999|ms", "timer value '1e999' is not a number"),
        ("x:1|c|@٣", "bad sample rate '@٣'"),
    ],
)
def test_the_lines_that_crashed_the_agent_are_bad_lines(line: str, reason: str) -> None:
    parsed = parse_datagram(f"{line}\ngood:1|c".encode())
    assert parsed.bad == [(line, reason)]
    assert [(s.key, s.value) for s in parsed.samples] == [("good", 1.0)]


def test_timestamps_in_range_are_kept() -> None:
    parsed = parse_datagram(b"x:1|c|T1700000000\n_sc|svc|0|d:1700000000\n_e{1,1}:a|b|d:1700000000")
    assert parsed.bad == []
    assert parsed.samples[0].timestamp == parsed.service_checks[0].timestamp == parsed.events[0].timestamp == NOW


LINE_PARTS = st.sampled_from(["x", ":", "|", "c", "g", "ms", "s", "@", "T", "d:", "#", "_sc", "_e{1,1}:", "²", "٣",
                              "-", "+", ".", "e", "9" * 30, "1", "0", "Infinity", "\n", " ", "h:", "m:"])  # fmt: skip


@given(st.lists(LINE_PARTS, max_size=25).map("".join) | st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
def test_any_text_is_parsed_aggregated_and_flushed_into_a_valid_event_without_raising(text: str) -> None:
    parsed = parse_datagram(text.encode())
    aggregator = Aggregator(percentiles=(90.0, -100.0))
    aggregator.add(parsed.samples)
    for sample in parsed.samples:
        assert sample.timestamp is None or UNIX_SECONDS[0] <= sample.timestamp <= UNIX_SECONDS[1]
    for check in parsed.service_checks:
        assert check.timestamp is None or UNIX_SECONDS[0] <= check.timestamp <= UNIX_SECONDS[1]
    aggregator.flush(NOW, 10)


async def test_the_agent_counts_bad_lines_and_drops_points_that_are_not_finite() -> None:
    sent: list[Event] = []

    async def submit(event: Event) -> None:
        sent.append(event)

    registry = CollectorRegistry()
    entity = Entity(entity_class="agent", metadata=ObjectMeta(name="a", namespace="default"))
    server = StatsdServer(StatsdConfig(percentiles=[-100.0]), entity, submit, registry, wall_clock=lambda: NOW)
    server.handle_datagram(b"x:1|c|T\xc2\xb2\n_sc|svc|0|d:\xc2\xb2\nx:1|c|T99999999999999999999999\nt:1|ms\nt:2|ms\nbig:" +
                           b"9" * 300 + b"|c|@0.0000000001")  # fmt: skip
    with trio.fail_after(5):
        await server.flush()
    (event,) = sent
    event.validate()  # what the backend checks: every point finite, every timestamp in range
    value: Any = registry.get_sample_value
    assert value("pipeline_statsd_bad_lines_total") == 3
    assert value("pipeline_statsd_points_dropped_total") == 5  # top100 sum, sum_squares, mean: NaN; big: inf
    assert all(math.isfinite(p.value) for p in event.metrics.points)  # type: ignore[union-attr]

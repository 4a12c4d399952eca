"""Log lines stay one line each, whatever a peer puts in a value: control characters (a carriage
return, an ANSI escape, NUL, the Unicode line separators) are escaped, never written raw."""

from __future__ import annotations

import logging

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.logs import LogfmtFormatter


def line_of(**fields: object) -> str:
    record = logging.LogRecord("pipeline.test", logging.WARNING, __file__, 1, "invalid event", None, None)
    record.__dict__.update(fields)
    return LogfmtFormatter().format(record)


def test_a_forged_line_after_a_carriage_return_stays_in_its_field() -> None:
    forged = 'x\r2026-01-01T00:00:00 info pipeline.backend "backend ready"\x1b[2J\x00\u2028\x85'
    line = line_of(event_id=forged)
    assert line.splitlines() == [line]
    assert line.endswith('event_id="x\\r2026-01-01T00:00:00 info pipeline.backend \\"backend ready\\"'
                         '\\x1b[2J\\x00\\u2028\\x85"')  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_every_value_renders_on_one_line_of_printable_characters(value: str) -> None:
    line = line_of(value=value)
    assert line.splitlines() == [line]
    assert all(c.isprintable() or c == " " for c in line), ascii(line)

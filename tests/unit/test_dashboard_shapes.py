"""The event and entity pages' pure helpers: when an incident started, times, sparklines."""

from __future__ import annotations

import math

from pipeline.backend.dashboard.shapes import ago, incident_start, short, sparkline, status_class
from pipeline.model import Check, CheckHistory


def test_an_incident_starts_at_the_first_of_the_trailing_failures() -> None:
    history = [CheckHistory(0, 100), CheckHistory(2, 160), CheckHistory(1, 220), CheckHistory(2, 280)]
    assert incident_start(Check(status=2, executed=280, history=history), 999) == 160
    assert incident_start(Check(status=0, executed=280, history=history), 999) == 999  # no incident
    assert incident_start(Check(status=2, executed=280), 999) == 280


def test_times_and_statuses_read_as_people_read_them() -> None:
    assert ago(1000, 1125) == "2 min ago"
    assert ago(1000, 1000 + 7300) == "2 h ago"
    assert ago(0, 5) == "never"
    assert status_class(2) == "status-critical"
    assert status_class(7) == "status-unknown"
    assert (short(444.0), short(0.25), short(math.nan)) == ("444", "0.25", "nan")


def test_a_sparkline_fills_its_box_higher_values_higher() -> None:
    assert sparkline([(0, 1.0), (30, 3.0), (60, 2.0)], 120, 24) == "0.0,23.0 60.0,1.0 120.0,12.0"
    assert sparkline([(0, 5.0)], 120, 24) == "0.0,12.0 120.0,12.0"  # one point: a flat line
    assert sparkline([(0, math.nan)]) == ""

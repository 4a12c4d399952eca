"""An EventFilter's ``when`` windows, as Sensu Go computes them (core/v2 time_window.go and its
tests), and what they do to an allow and a deny filter (backend/pipeline/filter/legacy.go)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pipeline.config.documents import read_yaml
from pipeline.config.loader import check_documents
from pipeline.core.filtering import compile_event_filter
from pipeline.core.time_windows import in_window, in_windows
from pipeline.errors import ValidationError
from pipeline.model.codec import decode
from pipeline.model.pipeline import EventFilter
from pipeline.model.time_window import TimeWindowTimeRange, TimeWindowWhen, parse_kitchen
from tests.unit.js_events import make_event


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


# Sensu Go's TestInWindow cases, one for one (2006-01-02 is a Monday)
@pytest.mark.parametrize(
    ("now", "begin", "end", "inside"),
    [
        ("2006-01-02T15:04:05", "3:00PM", "4:00PM", True),
        ("2006-01-02T10:04:05", "3:00PM", "4:00PM", False),
        ("2006-01-02T15:04:05", "3:00 PM", "4:00 PM", True),  # Sensu 1.x's spaces
        ("2006-01-02T15:04:05", "3:00PM", "8:00AM", True),  # the first day of a window over midnight
        ("2006-01-02T05:04:05", "3:00PM", "8:00AM", True),  # its second day
        ("2006-01-02T10:04:05", "3:00PM", "8:00AM", False),
        # both ends are in, to the instant
        ("2006-01-02T16:00:00", "3:00PM", "4:00PM", True),
        ("2006-01-02T16:00:01", "3:00PM", "4:00PM", False),
        ("2006-01-02T15:00:00", "3:00PM", "4:00PM", True),
        ("2006-01-02T14:59:59", "3:00PM", "4:00PM", False),
        ("2006-01-02T23:59:59", "3:00PM", "8:00AM", True),
        ("2006-01-02T00:00:00", "12:00AM", "12:30AM", True),  # 12 AM is midnight, 12 PM noon
        ("2006-01-02T12:10:00", "12:00PM", "12:30PM", True),
    ],
)
def test_a_window_holds_what_sensu_s_holds(now: str, begin: str, end: str, inside: bool) -> None:
    assert in_window(TimeWindowTimeRange(begin, end), at(now)) is inside


def test_the_windows_of_all_days_and_of_the_weekday_count_and_none_is_never() -> None:
    when = decode(TimeWindowWhen, {"days": {"monday": [{"begin": "9:00AM", "end": "5:00PM"}]}})
    assert in_windows(when, at("2006-01-02T10:00:00"))  # a Monday
    assert not in_windows(when, at("2006-01-03T10:00:00"))  # a Tuesday
    everyday = decode(TimeWindowWhen, {"days": {"all": [{"begin": "9:00AM", "end": "5:00PM"}]}})
    assert in_windows(everyday, at("2006-01-03T10:00:00"))
    assert not in_windows(TimeWindowWhen(), at("2006-01-02T10:00:00"))  # Sensu's "no time windows"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("9:00AM", 9 * 3600), ("9:05 PM", 21 * 3600 + 300), ("12:00AM", 0), ("12:00PM", 12 * 3600), ("0:30AM", 1800)],
)
def test_times_are_go_s_kitchen_layout(text: str, seconds: int) -> None:
    assert parse_kitchen(text) == seconds


@pytest.mark.parametrize("text", ["15:00", "3:00pm", "3PM", "13:00PM", "3:60PM", "3:5PM", "", "3:00PM later"])
def test_what_go_does_not_parse_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"out of range|expected a time such as 9:00AM"):
        parse_kitchen(text)


NINE_TO_FIVE = """\
type: EventFilter
api_version: core/v2
metadata:
  name: nine_to_fiver
spec:
  action: allow
  expressions:
  - event.check.status != 0
  when:
    days:
      monday:
      - begin: 9:00AM
        end: 5:00PM
"""


def filter_of(text: str) -> EventFilter:
    loaded = check_documents([read_yaml("filters.yml", text)])
    assert loaded.errors == []
    (event_filter,) = loaded.resources.filters
    return event_filter


def test_an_allow_filter_removes_events_outside_its_windows_before_its_expressions() -> None:
    compiled = compile_event_filter(filter_of(NINE_TO_FIVE))
    failing = make_event(status=2)
    assert compiled.evaluate(failing, at("2006-01-02T10:00:00")).passed
    assert not compiled.evaluate(failing, at("2006-01-02T18:00:00")).passed
    assert not compiled.evaluate(failing, at("2006-01-03T10:00:00")).passed  # Tuesday
    assert not compiled.evaluate(make_event(status=0), at("2006-01-02T10:00:00")).passed  # the expression


def test_a_deny_filter_removes_events_inside_its_windows_and_asks_its_expressions_outside() -> None:
    compiled = compile_event_filter(filter_of(NINE_TO_FIVE.replace("action: allow", "action: deny")))
    failing, ok = make_event(status=2), make_event(status=0)
    assert not compiled.evaluate(ok, at("2006-01-02T10:00:00")).passed  # inside: removed
    assert not compiled.evaluate(failing, at("2006-01-02T18:00:00")).passed  # outside: the expression holds
    assert compiled.evaluate(ok, at("2006-01-02T18:00:00")).passed


def test_a_window_go_cannot_parse_is_a_config_error_naming_it() -> None:
    loaded = check_documents([read_yaml("f.yml", NINE_TO_FIVE.replace("end: 5:00PM", "end: '17:00'"))])
    (error,) = loaded.errors
    assert "line 13" in str(error)
    assert "spec.when.days.monday[0].end: expected a time such as 9:00AM or 5:30PM, got '17:00'" in str(error)


def test_a_filter_without_when_is_not_windowed() -> None:
    compiled = compile_event_filter(filter_of(NINE_TO_FIVE.split("  when:")[0]))
    assert compiled.evaluate(make_event(status=2), at("2006-01-03T03:00:00")).passed
    with pytest.raises(ValidationError):
        decode(EventFilter, {"when": {"days": {"monday": "9-5"}}}, "spec")

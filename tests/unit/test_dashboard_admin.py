"""The pure parts of the dashboard's admin pages: a silence's length, which results the timeline
shows, where a file's resources are."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.backend.dashboard.views.config import file_locations, origin_of
from pipeline.backend.dashboard.views.silences import FormError, _length
from pipeline.backend.dashboard.views.timeline import changed_state, entry_of
from pipeline.core.timespec import parse_duration
from pipeline.model import Check, CheckHistory, Entity, Event, ObjectMeta

NOW = 1_800_000_000


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("30m", 1800), ("2h", 7200), ("1d", 86400), ("1w", 604800)])
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["2 hours", "", "-1h", "1y", "99999999999999999999w", "²h"])
def test_what_is_not_a_duration_is_refused_with_the_forms(text: str) -> None:
    with pytest.raises(ValueError, match="use 90s, 30m, 2h, 1d or 1w"):
        parse_duration(text)


def test_a_silence_lasts_a_duration_until_an_end_or_for_good() -> None:
    assert _length({"duration": "2h"}, NOW) == 7200
    assert _length({"end": str(NOW + 60)}, NOW) == 60
    assert _length({"end": "2027-01-15T09:00:00+00:00"}, NOW) == 3600
    assert _length({}, NOW) == -1
    for form, field in (({"duration": "0s"}, "duration"), ({"end": str(NOW - 1)}, "end"), ({"end": "1h"}, "end"),
                        ({"end": "2027-01-15T08:00:00"}, "end"), ({"duration": "1h", "end": str(NOW + 9)}, "end")):  # fmt: skip
        with pytest.raises(FormError) as refused:
            _length(form, NOW)
        assert refused.value.field == field


def result(*statuses: int) -> Event:
    history = [CheckHistory(status=s, executed=NOW + i) for i, s in enumerate(statuses)]
    check = Check(metadata=ObjectMeta(name="check-http"), status=statuses[-1], history=history, output="line 1\nline 2")
    return Event(entity=Entity(metadata=ObjectMeta(name="web 1/a")), check=check, timestamp=NOW)


def test_the_timeline_shows_a_result_that_changed_its_checks_status() -> None:
    assert not changed_state(result(0))
    assert changed_state(result(2))
    assert not changed_state(result(0, 0))
    assert changed_state(result(0, 1))
    assert changed_state(result(1, 2))
    assert not changed_state(result(2, 2))
    entry = entry_of(result(0, 2))
    assert entry.transition == "OK → CRITICAL"
    assert entry.output == "line 1"
    assert entry.entity_url == "/entities/default/web%201%2Fa"
    assert entry.event_url == "/events/default/web%201%2Fa/check-http"


def test_file_locations_name_the_file_and_line_of_each_resource(tmp_path: Path) -> None:
    (tmp_path / "a.yml").write_text("type: Handler\nmetadata: {name: pager}\n---\nnot: a resource\n---\n"
                                    "type: CheckConfig\nmetadata: {name: disk, namespace: ops}\n")  # fmt: skip
    (tmp_path / "broken.yml").write_text("type: [\n")
    found = file_locations(tmp_path)
    assert found == {("Handler", "default", "pager"): f"{tmp_path / 'a.yml'}:1",
                     ("CheckConfig", "ops", "disk"): f"{tmp_path / 'a.yml'}:6"}  # fmt: skip
    key = ("Handler", "default", "pager")
    assert origin_of(key, {key: "file"}, found) == f"file {tmp_path / 'a.yml'}:1"
    assert origin_of(key, {key: "api"}, found) == f"API (over {tmp_path / 'a.yml'}:1)"
    assert origin_of(key, {key: "api"}, {}) == "API"

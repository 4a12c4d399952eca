"""Subdue windows (Sensu Go 6's ``subdues``): the pure decision against a table worked out from
Sensu Go's ``time_window.go``, validation, and the agent's scheduler over a week in virtual
time, across Europe/Paris's change to summer time (2027-03-28)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import trio
import trio.testing

from pipeline.agent.scheduler import Scheduler
from pipeline.config.loader import load_path
from pipeline.core.schedule import splay_phase
from pipeline.core.subdues import in_window, is_subdued
from pipeline.errors import ValidationError
from pipeline.model import Check, CheckConfig, Entity, Event, ObjectMeta
from pipeline.model.codec import decode
from pipeline.model.subdue import TimeWindowRepeated

PARIS = ZoneInfo("Europe/Paris")


def at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


# 2027-03-01 is a Monday; 22:00 to 02:00 the next day, written at +01:00.
NIGHT = ("2027-03-01T22:00:00+01:00", "2027-03-02T02:00:00+01:00")

TABLE = [
    # one-off: begin and end included, to the second
    ([], "2027-03-01T21:59:59+01:00", False),
    ([], "2027-03-01T22:00:00+01:00", True),
    ([], "2027-03-01T21:30:00+00:00", True),  # the same window seen from UTC
    ([], "2027-03-02T02:00:00+01:00", True),
    ([], "2027-03-02T02:00:01+01:00", False),
    ([], "2027-03-08T23:00:00+01:00", False),
    # daily: from begin on; the part after midnight is not quiet (Sensu places it on the day)
    (["daily"], "2027-02-28T23:00:00+01:00", False),
    (["daily"], "2027-03-05T23:00:00+01:00", True),
    (["daily"], "2027-03-06T01:00:00+01:00", False),
    (["daily"], "2027-03-05T21:59:00+01:00", False),
    # a weekday's window crosses midnight, Saturday's does not (Sunday starts Go's week)
    (["mondays"], "2027-03-08T23:00:00+01:00", True),
    (["mondays"], "2027-03-09T01:00:00+01:00", True),
    (["mondays"], "2027-03-09T23:00:00+01:00", False),
    (["sundays"], "2027-03-07T23:00:00+01:00", True),
    (["sundays"], "2027-03-08T01:00:00+01:00", True),
    (["saturdays"], "2027-03-06T23:00:00+01:00", True),
    (["saturdays"], "2027-03-07T01:00:00+01:00", False),
    (["weekdays"], "2027-03-05T23:00:00+01:00", True),
    (["weekdays"], "2027-03-06T01:00:00+01:00", True),
    (["weekdays"], "2027-03-06T23:00:00+01:00", False),
    (["weekdays"], "2027-03-08T01:00:00+01:00", False),
    (["weekends"], "2027-03-06T23:00:00+01:00", True),
    (["weekends"], "2027-03-07T01:00:00+01:00", False),
    (["weekends"], "2027-03-07T23:00:00+01:00", True),
    (["weekends"], "2027-03-08T01:00:00+01:00", True),
    (["weekends"], "2027-03-09T23:00:00+01:00", False),
    (["weekly"], "2027-03-15T23:00:00+01:00", True),  # begin is a Monday
    (["weekly"], "2027-03-16T23:00:00+01:00", False),
    (["monthly"], "2027-04-01T23:00:00+01:00", True),
    (["monthly"], "2027-04-02T23:00:00+01:00", False),
    (["annually"], "2028-03-01T23:00:00+01:00", True),
    (["annually"], "2027-04-01T23:00:00+01:00", False),
    (["saturdays", "mondays"], "2027-03-09T01:00:00+01:00", True),
    # the offset written is the window's zone for good: +01:00 is 23:00 in Paris in summer
    (["daily"], "2027-03-29T22:30:00+02:00", False),
    (["daily"], "2027-03-29T23:30:00+02:00", True),
]


@pytest.mark.parametrize(("repeat", "instant", "inside"), TABLE)
def test_in_window_as_sensu_go_computes_it(repeat: list[str], instant: str, inside: bool) -> None:
    window = TimeWindowRepeated(begin=NIGHT[0], end=NIGHT[1], repeat=repeat)
    assert in_window(window, at(instant)) is inside


def test_a_window_written_in_summer_time_follows_the_summer_wall_clock() -> None:
    summer = TimeWindowRepeated(begin="2027-03-28T22:00:00+02:00", end="2027-03-28T23:00:00+02:00", repeat=["daily"])
    assert in_window(summer, datetime(2027, 3, 30, 22, 30, tzinfo=PARIS).timestamp())
    assert not in_window(summer, datetime(2027, 3, 30, 23, 30, tzinfo=PARIS).timestamp())


@pytest.mark.parametrize("repeat", [[], ["daily"], ["weekly"], ["weekdays"]])
def test_a_window_to_the_last_second_a_calendar_holds(repeat: list[str]) -> None:
    """``end: 9999-12-31T23:59:59Z`` (until further notice) is a window like any other: Sensu's
    second added to it went past what a datetime holds, and every run of the check raised."""
    window = TimeWindowRepeated(begin="2027-03-01T00:00:00Z", end="9999-12-31T23:59:59Z", repeat=repeat)
    assert in_window(window, at("2027-03-03T12:00:00+00:00"))  # a Wednesday: the window began on Monday
    assert in_window(window, at("9999-12-31T23:59:59+00:00"))
    assert not in_window(window, at("2027-02-28T23:59:59+00:00"))


def test_subdued_in_any_window() -> None:
    windows = [
        TimeWindowRepeated(begin="2027-03-01T09:00:00Z", end="2027-03-01T10:00:00Z", repeat=["daily"]),
        TimeWindowRepeated(begin="2027-03-01T22:00:00Z", end="2027-03-01T23:00:00Z", repeat=["daily"]),
    ]
    assert is_subdued(windows, at("2027-03-03T22:30:00+00:00"))
    assert not is_subdued(windows, at("2027-03-03T12:00:00+00:00"))
    assert not is_subdued([], at("2027-03-03T22:30:00+00:00"))


@pytest.mark.parametrize(
    ("window", "message"),
    [
        ({"begin": "22:00", "end": "2027-03-01T23:00:00Z"}, r"spec\.subdues\[0\]\.begin: expected RFC 3339"),
        ({"begin": "2027-03-01T22:00:00", "end": "2027-03-01T23:00:00Z"}, r"subdues\[0\]\.begin: expected RFC 3339"),
        ({"begin": "2027-02-30T22:00:00Z", "end": "2027-03-01T23:00:00Z"}, r"subdues\[0\]\.begin: day is out"),
        ({"begin": "2027-03-01T22:00:00Z", "end": "2027-03-01T21:00:00Z"}, r"subdues\[0\]\.end: must not be before"),
        (
            {"begin": "2027-03-01T22:00:00Z", "end": "2027-03-01T23:00:00Z", "repeat": ["Daily"]},
            r"subdues\[0\]\.repeat\[0\]: expected one of annually, .* got 'Daily'",
        ),
    ],
)
def test_invalid_windows_are_refused_naming_the_field(window: dict[str, object], message: str) -> None:
    check = decode(CheckConfig, {"metadata": {"name": "c"}, "command": "true", "interval": 60, "subdues": [window]})
    with pytest.raises(ValidationError, match=message):
        check.validate("spec")


def test_sensu_5_subdue_stays_refused() -> None:
    check = decode(CheckConfig, {"metadata": {"name": "c"}, "command": "true", "interval": 60,
                                 "subdue": {"days": {"all": [{"begin": "5:00 PM", "end": "8:00 AM"}]}}})  # fmt: skip
    with pytest.raises(ValidationError, match=r"spec\.subdue: not supported"):
        check.validate("spec")


# Virtual time 0 is Monday 2027-03-22 00:00 in Paris (+01:00); the week runs over the change
# to summer time on Sunday the 28th.
MONDAY = datetime(2027, 3, 22, tzinfo=PARIS).timestamp()


def wall() -> float:
    return MONDAY + trio.current_time()


class Runs:
    def __init__(self) -> None:
        self.ran: list[float] = []
        self.subdued: list[float] = []

    async def run_check(self, cfg: CheckConfig, issued: int, proxy: Entity | None = None) -> Event:
        self.ran.append(wall())
        return Event(entity=Entity(metadata=ObjectMeta(name="a")), check=Check(metadata=ObjectMeta(name=cfg.name)))

    async def send(self, event: Event) -> None:
        pass

    def scheduler(self) -> Scheduler:
        return Scheduler("web1", self.run_check, self.send, on_subdued=lambda name: self.subdued.append(wall()),
                         wall_clock=wall)  # fmt: skip


def hourly(*windows: TimeWindowRepeated) -> CheckConfig:
    return CheckConfig(metadata=ObjectMeta(name="backup"), command="true", interval=3600, publish=True,
                       subdues=list(windows))  # fmt: skip


def paris_hours(instants: list[float]) -> list[tuple[int, int]]:
    return [(datetime.fromtimestamp(t, PARIS).day, datetime.fromtimestamp(t, PARIS).hour) for t in instants]


@pytest.fixture
def mock_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


async def run_week(runs: Runs, check: CheckConfig, adhoc_at: float | None = None) -> None:
    scheduler = runs.scheduler()
    async with trio.open_nursery() as nursery:
        await nursery.start(scheduler.run)
        scheduler.update([check])
        if adhoc_at is not None:
            await trio.sleep(adhoc_at)
            scheduler.run_once(check)
        await trio.sleep_until(7 * 86400)
        nursery.cancel_scope.cancel()


async def test_no_run_inside_a_daily_window_for_a_week_across_summer_time(mock_clock: trio.testing.MockClock) -> None:
    # noon to one, written at +01:00: at 13:00 on a Paris wall clock once summer time began
    runs = Runs()
    await run_week(runs, hourly(TimeWindowRepeated(begin="2027-03-22T12:00:00+01:00", end="2027-03-22T13:00:00+01:00",
                                                   repeat=["daily"])))  # fmt: skip
    phase = splay_phase("web1", "backup", 3600)
    assert 1 < phase < 3599
    assert len(runs.ran) + len(runs.subdued) == 7 * 24
    assert paris_hours(runs.subdued) == [(22, 12), (23, 12), (24, 12), (25, 12), (26, 12), (27, 12), (28, 13)]
    assert not set(paris_hours(runs.ran)) & set(paris_hours(runs.subdued))


async def test_weekend_window_written_in_summer_time(mock_clock: trio.testing.MockClock) -> None:
    # Saturday and Sunday 08:00 to 10:00 Paris summer time, from a begin before the change
    runs = Runs()
    window = TimeWindowRepeated(begin="2027-03-20T08:00:00+02:00", end="2027-03-20T10:00:00+02:00", repeat=["weekends"])
    await run_week(runs, hourly(window))
    # Saturday the 27th is still winter time: 08:00+02:00 is 07:00 in Paris; Sunday is summer
    assert paris_hours(runs.subdued) == [(27, 7), (27, 8), (28, 8), (28, 9)]
    assert len(runs.ran) == 7 * 24 - 4


async def test_an_adhoc_execution_runs_inside_a_window(mock_clock: trio.testing.MockClock) -> None:
    # Sensu Go checks subdues in its schedulers only: an ad hoc request runs whatever the window
    runs = Runs()
    always = TimeWindowRepeated(begin="2027-03-01T00:00:00Z", end="2027-04-01T00:00:00Z")
    await run_week(runs, hourly(always), adhoc_at=3 * 86400 + 5)
    assert runs.ran == [MONDAY + 3 * 86400 + 5]
    assert len(runs.subdued) == 7 * 24


def test_unquoted_times_in_yaml_load_as_sensu_go_reads_them(tmp_path: Path) -> None:
    # YAML would make these datetimes; Sensu Go's reader keeps them as written, and so does pipeline
    (tmp_path / "c.yml").write_text(
        "type: CheckConfig\napi_version: core/v2\nmetadata: {name: c}\nspec:\n  command: 'true'\n  interval: 60\n"
        "  subdues:\n  - begin: 2027-03-01T22:00:00+01:00\n    end: 2027-03-02T02:00:00+01:00\n    repeat: [daily]\n"
    )
    loaded = load_path(tmp_path)
    assert loaded.errors == []
    (check,) = loaded.resources.checks
    assert [(w.begin, w.end) for w in check.subdues] == [("2027-03-01T22:00:00+01:00", "2027-03-02T02:00:00+01:00")]

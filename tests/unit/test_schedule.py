"""Schedules as pure functions of wall-clock time: grids, splay, cron forms and their errors."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.schedule import (
    CronSchedule,
    IntervalSchedule,
    ScheduleError,
    parse_cron,
    parse_duration,
    schedule_for,
    splay_phase,
)

EPOCH = 1_767_225_600.0  # 2026-01-01T00:00:00Z, a Thursday


@given(agent=st.text(max_size=20), check=st.text(max_size=20), interval=st.integers(1, 86400))
def test_splay_is_stable_and_within_the_interval(agent: str, check: str, interval: int) -> None:
    phase = splay_phase(agent, check, interval)
    assert 0 <= phase < interval
    assert phase == splay_phase(agent, check, interval)


def test_splay_spreads_many_agents_over_the_interval() -> None:
    phases = [splay_phase(f"web{i}", "cpu", 60) for i in range(600)]
    per_ten_seconds = [sum(1 for p in phases if lo <= p < lo + 10) for lo in range(0, 60, 10)]
    assert min(per_ten_seconds) > 60  # about 100 each; none empty, none crowded


@given(now=st.floats(0, 4e9), interval=st.integers(1, 3600), phase_fraction=st.floats(0, 0.999))
def test_interval_grid(now: float, interval: int, phase_fraction: float) -> None:
    schedule = IntervalSchedule(interval, phase_fraction * interval)
    run = schedule.next_after(now)
    assert now < run <= now + interval + 1e-6
    assert (run - schedule.phase) / interval == pytest.approx(round((run - schedule.phase) / interval), abs=1e-6)


def test_runs_between() -> None:
    grid = IntervalSchedule(10, 0)
    assert grid.runs_between(0, 10) == 0
    assert grid.runs_between(0, 30) == 2
    cron = parse_cron("CRON_TZ=UTC */5 * * * *")
    assert cron.runs_between(EPOCH, EPOCH + 900) == 2


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("CRON_TZ=UTC */5 * * * *", EPOCH + 30, EPOCH + 300),
        ("CRON_TZ=UTC 0 9 * * 1-5", EPOCH, EPOCH + 9 * 3600),  # Thursday 09:00
        ("CRON_TZ=UTC 0 9 * * 1-5", EPOCH + 9 * 3600, EPOCH + 86400 + 9 * 3600),
        ("CRON_TZ=UTC 0 9 * * 1-5", EPOCH + 86400 + 9 * 3600, EPOCH + 4 * 86400 + 9 * 3600),  # Fri -> Mon
        ("CRON_TZ=UTC @hourly", EPOCH + 1, EPOCH + 3600),
        ("CRON_TZ=UTC @daily", EPOCH + 1, EPOCH + 86400),
        ("CRON_TZ=Europe/Paris 0 0 * * *", EPOCH, EPOCH + 23 * 3600),  # Paris midnight is 23:00 UTC
    ],
)
def test_cron_times(expression: str, after: float, expected: float) -> None:
    schedule = parse_cron(expression)
    assert isinstance(schedule, CronSchedule)
    assert schedule.next_after(after) == expected


def test_cron_uses_the_local_zone_without_a_prefix() -> None:
    schedule = parse_cron("0 12 * * *", local=datetime.timezone(datetime.timedelta(hours=2)))
    assert schedule.next_after(EPOCH) == EPOCH + 10 * 3600


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("1h30m", 5400), ("1.5s", 1.5), ("250ms", 0.25)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_a_date_that_comes_once_in_four_years_is_a_schedule() -> None:
    schedule = parse_cron("CRON_TZ=UTC 0 0 29 2 *")
    assert schedule.next_after(4_102_444_800) == 4_233_686_400  # from 2100 (no leap day) to 2104-02-29


def test_every_is_an_interval_with_splay() -> None:
    schedule = schedule_for("web1", "often", interval=0, cron="@every 5m")
    assert schedule == IntervalSchedule(300, splay_phase("web1", "often", 300))


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("* * * *", "must have 5 fields"),
        ("* * * * * *", "must have 5 fields"),
        ("61 * * * *", "invalid cron expression"),
        ("@sometimes", "unknown cron descriptor '@sometimes'"),
        ("@every soon", "invalid duration 'soon'"),
        ("@every 0s", "must be positive"),
        ("CRON_TZ=Mars/Base * * * * *", "unknown time zone 'Mars/Base'"),
        # dates no calendar has: accepted, they stopped every check of the agent at its first run
        ("59 23 31 2 *", "never fires: no date matches it"),
        ("0 0 31 4,6,9,11 *", "never fires"),
        ("CRON_TZ=UTC 0 12 30 2 *", "never fires"),
    ],
)
def test_bad_cron_is_an_error_saying_why(expression: str, message: str) -> None:
    with pytest.raises(ScheduleError, match=message):
        parse_cron(expression)

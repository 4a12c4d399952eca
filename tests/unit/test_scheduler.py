"""Interval scheduling in virtual time: anchored runs, no overlap, skips counted, updates applied."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from pipeline.agent.scheduler import Scheduler, next_due
from pipeline.model import Check, CheckConfig, Entity, Event, ObjectMeta


def config(name: str, interval: int, *, publish: bool = True) -> CheckConfig:
    return CheckConfig(metadata=ObjectMeta(name=name), command="true", interval=interval, publish=publish)


class Recorder:
    """Runs "checks" that take ``duration`` virtual seconds and records when each started."""

    def __init__(self, duration: float = 0.0) -> None:
        self.duration = duration
        self.starts: dict[str, list[float]] = {}
        self.sent: list[Event] = []
        self.skipped: list[str] = []

    async def run_check(self, cfg: CheckConfig, issued: int) -> Event:
        self.starts.setdefault(cfg.metadata.name, []).append(trio.current_time())
        await trio.sleep(self.duration)
        return Event(entity=Entity(metadata=ObjectMeta(name="a")), check=Check(metadata=ObjectMeta(name=cfg.name)))

    async def send(self, event: Event) -> None:
        self.sent.append(event)


def test_next_due_is_on_the_grid() -> None:
    assert next_due(100.0, 10.0, 95.0) == 100.0
    assert next_due(100.0, 10.0, 100.0) == 100.0
    assert next_due(100.0, 10.0, 100.1) == 110.0
    assert next_due(100.0, 10.0, 135.0) == 140.0


@pytest.fixture
def mock_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


async def run_for(seconds: float, recorder: Recorder, checks: list[CheckConfig]) -> Scheduler:
    scheduler = Scheduler(recorder.run_check, recorder.send, on_skip=recorder.skipped.append)
    async with trio.open_nursery() as nursery:
        await nursery.start(scheduler.run)
        scheduler.update(checks)
        await trio.sleep(seconds)
        nursery.cancel_scope.cancel()
    return scheduler


async def test_runs_are_anchored_and_do_not_drift(mock_clock: trio.testing.MockClock) -> None:
    recorder = Recorder(duration=0.7)
    start = trio.current_time()
    await run_for(35.5, recorder, [config("cpu", 10)])
    assert [t - start for t in recorder.starts["cpu"]] == [0.0, 10.0, 20.0, 30.0]
    assert len(recorder.sent) == 4


async def test_a_run_still_going_is_not_started_twice_and_the_skip_is_counted(
    mock_clock: trio.testing.MockClock,
) -> None:
    recorder = Recorder(duration=25.0)
    start = trio.current_time()
    await run_for(61.0, recorder, [config("slow", 10)])
    # Runs at 0 (ends 25: skips 10, 20), 30 (ends 55: skips 40, 50), 60.
    assert [t - start for t in recorder.starts["slow"]] == [0.0, 30.0, 60.0]
    assert recorder.skipped == ["slow"] * 4


async def test_update_starts_new_stops_removed_and_restarts_changed(mock_clock: trio.testing.MockClock) -> None:
    recorder = Recorder()
    scheduler = Scheduler(recorder.run_check, recorder.send)
    async with trio.open_nursery() as nursery:
        await nursery.start(scheduler.run)
        scheduler.update([config("a", 10), config("b", 10), config("unpublished", 10, publish=False)])
        await trio.sleep(15)
        assert scheduler.scheduled == ["a", "b"]
        scheduler.update([config("a", 5), config("c", 10)])
        assert scheduler.scheduled == ["a", "c"]
        await trio.sleep(11)
        nursery.cancel_scope.cancel()
    assert len(recorder.starts["b"]) == 2  # at 0 and 10, then removed
    assert len(recorder.starts["a"]) == 2 + 3  # twice on the old interval, then at 15, 20, 25
    assert len(recorder.starts["c"]) == 2

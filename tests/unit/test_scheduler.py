"""Scheduling in virtual time: anchored runs with a stable splay, cron, no overlap, updates."""

from __future__ import annotations

import itertools

import pytest
import trio
import trio.testing

from pipeline.agent.scheduler import Scheduler
from pipeline.core.schedule import splay_phase
from pipeline.model import Check, CheckConfig, Entity, Event, ObjectMeta
from pipeline.model.check import ProxyRequests

#: The wall clock at virtual time 0: 2026-01-01T00:00:00Z.
EPOCH = 1_767_225_600.0


def config(name: str, interval: int = 0, *, cron: str = "", publish: bool = True) -> CheckConfig:
    return CheckConfig(metadata=ObjectMeta(name=name), command="true", interval=interval, cron=cron, publish=publish)


def wall() -> float:
    return EPOCH + trio.current_time()


class Recorder:
    """Runs "checks" that take ``duration`` virtual seconds and records when each started."""

    def __init__(self, duration: float = 0.0) -> None:
        self.duration = duration
        self.starts: dict[str, list[float]] = {}
        self.issued: list[int] = []
        self.skipped: list[str] = []
        self.proxies: list[str] = []
        self.unschedulable: list[str] = []

    async def run_check(self, cfg: CheckConfig, issued: int, proxy: Entity | None = None) -> Event:
        self.starts.setdefault(cfg.metadata.name, []).append(wall())
        if proxy is not None:
            self.proxies.append(proxy.name)
        self.issued.append(issued)
        await trio.sleep(self.duration)
        return Event(entity=Entity(metadata=ObjectMeta(name="a")), check=Check(metadata=ObjectMeta(name=cfg.name)))

    async def send(self, event: Event) -> None:
        pass

    def scheduler(self, agent: str = "web1") -> Scheduler:
        return Scheduler(agent, self.run_check, self.send, on_skip=self.skipped.append,
                         on_unschedulable=self.unschedulable.append, wall_clock=wall)  # fmt: skip


@pytest.fixture
def mock_clock() -> trio.testing.MockClock:
    clock = trio.testing.MockClock(autojump_threshold=0)
    clock.jump(0)
    return clock


async def run_for(seconds: float, recorder: Recorder, checks: list[CheckConfig], agent: str = "web1") -> None:
    scheduler = recorder.scheduler(agent)
    async with trio.open_nursery() as nursery:
        await nursery.start(scheduler.run)
        scheduler.update(checks)
        await trio.sleep(seconds)
        nursery.cancel_scope.cancel()


async def test_runs_are_anchored_on_a_splayed_grid(mock_clock: trio.testing.MockClock) -> None:
    recorder = Recorder(duration=0.7)
    await run_for(40, recorder, [config("cpu", 10)])
    phase = splay_phase("web1", "cpu", 10)
    assert recorder.starts["cpu"] == pytest.approx([EPOCH + phase + 10 * k for k in range(4)])
    assert recorder.issued == [int(t) for t in recorder.starts["cpu"]]


async def test_the_same_check_on_different_agents_fires_at_different_instants(
    mock_clock: trio.testing.MockClock,
) -> None:
    firsts = set()
    for agent in ("web1", "web2", "web3", "db1"):
        recorder = Recorder()
        await run_for(10, recorder, [config("cpu", 10)], agent=agent)
        firsts.add(round(recorder.starts["cpu"][0] % 10, 3))
    assert len(firsts) == 4


async def test_a_run_still_going_is_not_started_twice_and_the_skip_is_counted(
    mock_clock: trio.testing.MockClock,
) -> None:
    recorder = Recorder(duration=25.0)
    await run_for(70, recorder, [config("slow", 10)])
    first = recorder.starts["slow"][0]
    # Runs at 0 (ends 25: skips 10, 20), 30 (ends 55: skips 40, 50), 60.
    assert [t - first for t in recorder.starts["slow"]] == pytest.approx([0, 30, 60])
    assert recorder.skipped == ["slow"] * 4


async def test_cron_runs_at_its_times(mock_clock: trio.testing.MockClock) -> None:
    recorder = Recorder(duration=1)
    await run_for(16 * 60, recorder, [config("report", cron="CRON_TZ=UTC */5 * * * *")])
    assert recorder.starts["report"] == [EPOCH + 300, EPOCH + 600, EPOCH + 900]


async def test_a_check_with_no_next_run_ends_alone_and_the_others_keep_their_schedule(
    mock_clock: trio.testing.MockClock,
) -> None:
    """A cron that never fires (the 31st of February), come to the agent without the resources'
    checks (an older backend's): that check's task ends, counted, and the rest run on. Before,
    it failed the scheduler, and every check of the agent stopped with it."""
    recorder = Recorder()
    never = CheckConfig(metadata=ObjectMeta(name="never"), command="true", cron="59 23 31 2 *", publish=True)
    await run_for(35, recorder, [config("steady", 10), never])
    assert len(recorder.starts["steady"]) == 3
    assert "never" not in recorder.starts
    assert recorder.unschedulable == ["never"]


async def test_every_descriptor(mock_clock: trio.testing.MockClock) -> None:
    recorder = Recorder()
    await run_for(95, recorder, [config("often", cron="@every 30s")])
    starts = recorder.starts["often"]
    assert len(starts) >= 3
    assert [b - a for a, b in itertools.pairwise(starts)] == pytest.approx([30] * (len(starts) - 1))


async def test_update_starts_new_stops_removed_and_restarts_changed(mock_clock: trio.testing.MockClock) -> None:
    recorder = Recorder()
    scheduler = recorder.scheduler()
    async with trio.open_nursery() as nursery:
        await nursery.start(scheduler.run)
        scheduler.update([config("a", 10), config("b", 10), config("unpublished", 10, publish=False)])
        assert scheduler.scheduled == ["a", "b"]
        await trio.sleep(20)
        scheduler.update([config("a", 5), config("c", 10)])
        assert scheduler.scheduled == ["a", "c"]
        await trio.sleep(20)
        nursery.cancel_scope.cancel()
    assert len(recorder.starts["b"]) == 2  # 20 s on a 10 s grid, then removed
    assert len(recorder.starts["a"]) == 2 + 4  # then 20 s on a 5 s grid
    assert len(recorder.starts["c"]) == 2


async def test_an_ad_hoc_run_happens_at_once_even_for_an_unpublished_check(mock_clock: trio.testing.MockClock) -> None:
    recorder = Recorder()
    scheduler = recorder.scheduler()
    async with trio.open_nursery() as nursery:
        await nursery.start(scheduler.run)
        scheduler.update([config("backup", 3600, publish=False)])
        await trio.sleep(7)
        scheduler.run_once(config("backup", 3600, publish=False))
        await trio.sleep(100)
        nursery.cancel_scope.cancel()
    assert scheduler.scheduled == []  # unpublished: never on a schedule
    assert recorder.starts == {"backup": [EPOCH + 7]}
    assert recorder.issued == [int(EPOCH + 7)]


async def test_round_robin_and_proxy_checks_run_only_when_the_backend_asks(mock_clock: trio.testing.MockClock) -> None:
    recorder = Recorder()
    scheduler = recorder.scheduler()
    round_robin = config("rr", 10)
    round_robin.round_robin = True
    proxy = config("ping", 10)
    proxy.proxy_requests = ProxyRequests(entity_attributes=["entity.entity_class == 'proxy'"])
    async with trio.open_nursery() as nursery:
        await nursery.start(scheduler.run)
        scheduler.update([round_robin, proxy, config("cpu", 10)])
        assert scheduler.scheduled == ["cpu"]
        await trio.sleep(35)
        scheduler.run_once(proxy, Entity(metadata=ObjectMeta(name="switch1")))
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    assert set(recorder.starts) == {"cpu", "ping"}
    assert recorder.proxies == ["switch1"]


async def test_skipped_runs_log_one_line_when_they_start_and_one_when_they_stop(
    mock_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO")
    durations = iter([25.0, 25.0, 0.5, 0.5])  # two overruns in a row (4 runs skipped), then on time
    recorder = Recorder()

    async def run_check(cfg: CheckConfig, issued: int, proxy: Entity | None = None) -> Event:
        recorder.duration = next(durations, 0.5)
        return await Recorder.run_check(recorder, cfg, issued, proxy)

    recorder.run_check = run_check  # type: ignore[method-assign]
    await run_for(90, recorder, [config("slow", 10)])
    assert recorder.skipped == ["slow"] * 4  # each skipped run still counted (checks_skipped)
    lines = [r for r in caplog.records if r.getMessage().startswith("check runs")]
    assert [r.getMessage() for r in lines] == ["check runs skipped", "check runs on time again"]
    assert lines[1].skipped == 4

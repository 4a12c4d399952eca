"""The agent's source runner: restarts with a capped backoff, counts by source, never drops, never
swallows a cancellation; and the registry of sources by name."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import trio
import trio.testing

from pipeline.agent import sources
from pipeline.agent.metrics import AgentMetrics
from pipeline.agent.sources import BACKOFF_MAX, BACKOFF_MIN, SourceContext, SourceRunner, SourceSettings
from pipeline.core.host_events import host_event
from pipeline.errors import UnknownSource
from pipeline.model import Entity, Event, ObjectMeta


@pytest.fixture
def mock_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


ENTITY = Entity(entity_class="agent", metadata=ObjectMeta(name="web1", namespace="default"))


def event(n: int) -> Event:
    return host_event(ENTITY, name="tick", output=f"tick {n}", status=0, timestamp=1_700_000_000 + n)


@dataclass
class Flaky:
    """Sends ``per_run`` events, then raises; ``failures`` times, then runs on."""

    failures: int
    per_run: int = 1
    name: str = "flaky"
    before_start: bool = False
    runs: list[float] = field(default_factory=list)

    async def run(
        self, send: trio.MemorySendChannel[Event], *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        self.runs.append(trio.current_time())
        if self.before_start and len(self.runs) <= self.failures:
            raise OSError("cannot observe")
        task_status.started()
        for n in range(self.per_run):
            await send.send(event(n))
        if len(self.runs) <= self.failures:
            raise ValueError(f"bad line {len(self.runs)}")
        await trio.sleep_forever()


def sample(metrics: AgentMetrics, name: str, source: str = "flaky") -> float | None:
    return metrics.registry.get_sample_value(name, {"source": source})


async def test_a_failing_source_is_restarted_with_a_doubling_capped_backoff_and_counted(
    mock_clock: trio.testing.MockClock,
) -> None:
    metrics = AgentMetrics.create()
    send, receive = trio.open_memory_channel[Event](100)
    source = Flaky(failures=12)
    async with trio.open_nursery() as nursery:
        await nursery.start(SourceRunner(send.send, metrics).run, source)
        received = [await receive.receive() for _ in range(13)]
        assert sample(metrics, "pipeline_agent_source_up") == 1
        nursery.cancel_scope.cancel()
    gaps = [b - a for a, b in zip(source.runs, source.runs[1:], strict=False)]
    expected = [min(BACKOFF_MIN * 2**i, BACKOFF_MAX) for i in range(12)]
    assert gaps == pytest.approx(expected)
    assert [e.check.output for e in received if e.check] == ["tick 0"] * 13
    assert sample(metrics, "pipeline_agent_source_failures_total") == 12
    assert sample(metrics, "pipeline_agent_source_events_total") == 13
    assert sample(metrics, "pipeline_agent_source_up") == 0


async def test_a_source_that_fails_before_observing_does_not_hold_the_agent(
    mock_clock: trio.testing.MockClock,
) -> None:
    metrics = AgentMetrics.create()
    send, receive = trio.open_memory_channel[Event](10)
    source = Flaky(failures=2, before_start=True)
    async with trio.open_nursery() as nursery:
        await nursery.start(SourceRunner(send.send, metrics).run, source)  # returns: the agent goes on
        assert sample(metrics, "pipeline_agent_source_up") == 0
        await receive.receive()
        nursery.cancel_scope.cancel()
    assert len(source.runs) == 3
    assert sample(metrics, "pipeline_agent_source_failures_total") == 2


async def test_a_required_source_that_cannot_start_stops_the_agent() -> None:
    send, _ = trio.open_memory_channel[Event](10)
    runner = SourceRunner(send.send, AgentMetrics.create())
    with pytest.raises(OSError, match="cannot observe"):
        await runner.run(Flaky(failures=1, before_start=True), required=True)


async def test_a_slow_spool_holds_the_sources_back_and_nothing_is_dropped(
    mock_clock: trio.testing.MockClock,
) -> None:
    """The outbound channel full, the source waits on send; once drained, every event arrives, and
    those handed over before a failure as well."""
    metrics = AgentMetrics.create()
    send, receive = trio.open_memory_channel[Event](1)
    source = Flaky(failures=1, per_run=5)
    async with trio.open_nursery() as nursery:
        await nursery.start(SourceRunner(send.send, metrics).run, source)
        await trio.sleep(100)
        assert len(source.runs) == 1  # blocked on the full channel, not failed
        assert sample(metrics, "pipeline_agent_source_events_total") == 1
        received = [await receive.receive() for _ in range(10)]
        nursery.cancel_scope.cancel()
    assert [e.check.output for e in received if e.check] == [f"tick {n}" for n in range(5)] * 2
    assert sample(metrics, "pipeline_agent_source_failures_total") == 1


async def test_a_cancelled_source_is_not_restarted(mock_clock: trio.testing.MockClock) -> None:
    metrics = AgentMetrics.create()
    send, _ = trio.open_memory_channel[Event](100)
    source = Flaky(failures=0)
    with trio.move_on_after(10):
        await SourceRunner(send.send, metrics).run(source)
    assert len(source.runs) == 1
    assert sample(metrics, "pipeline_agent_source_failures_total") in (None, 0)


def test_unknown_source_names_are_refused_with_the_known_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "SOURCES", {"tick": lambda context: Flaky(failures=0, name="tick")})
    context = SourceContext(ENTITY, SourceSettings(), AgentMetrics.create().registry)
    assert [s.name for s in sources.make_sources(["tick", "tick"], context)] == ["tick"]
    with pytest.raises(UnknownSource, match=r"--source 'dockr': unknown source \(known: tick\)") as caught:
        sources.make_sources(["tick", "dockr"], context)
    assert (caught.value.name, caught.value.known) == ("dockr", ["tick"])

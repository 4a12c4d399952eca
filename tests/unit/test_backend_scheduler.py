"""The backend's scheduler of round robin and proxy checks, in virtual time with fake agents."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
import trio
import trio.testing

from pipeline.backend.scheduler import BackendScheduler
from pipeline.metrics import BackendMetrics
from pipeline.model import CheckConfig, Entity, ObjectMeta
from pipeline.model.asset import Asset
from pipeline.model.check import HookConfig, ProxyRequests
from pipeline.model.subdue import TimeWindowRepeated

EPOCH = 1_767_225_600.0


def wall() -> float:
    return EPOCH + trio.current_time()


class FakeAgents:
    def __init__(self, *names: str) -> None:
        self.connected = set(names)
        self.unreachable: set[str] = set()
        #: (virtual time, agent or "*subscription", proxy entity name)
        self.asked: list[tuple[float, str, str]] = []

    def connected_agents(self, namespace: str, subscriptions: list[str]) -> list[str]:
        return sorted(self.connected)

    async def execute(
        self,
        check: CheckConfig,
        hooks: list[HookConfig],
        subscriptions: list[str],
        entity: Entity | None = None,
        assets: Sequence[Asset] = (),
    ) -> int:
        self.asked.append((trio.current_time(), "*" + ",".join(subscriptions), entity.name if entity else ""))
        return len(self.connected)

    async def execute_on(
        self,
        agent: str,
        check: CheckConfig,
        hooks: list[HookConfig],
        entity: Entity | None = None,
        assets: Sequence[Asset] = (),
    ) -> bool:
        if agent in self.unreachable:
            return False
        self.asked.append((trio.current_time(), agent, entity.name if entity else ""))
        return True


ENTITIES = [
    Entity(metadata=ObjectMeta(name=name, namespace="default", labels=labels), entity_class=cls)
    for name, labels, cls in [
        ("sw2", {"region": "eu"}, "proxy"),
        ("sw1", {"region": "eu"}, "proxy"),
        ("sw3", {"region": "us"}, "proxy"),
        ("web1", {"region": "eu"}, "agent"),
    ]
]


async def list_entities(namespace: str) -> list[Entity]:
    return list(ENTITIES)


def check(name: str = "rr", **fields: object) -> CheckConfig:
    return CheckConfig(
        metadata=ObjectMeta(name=name, namespace="default"),
        command="true",
        interval=10,
        publish=True,
        subscriptions=["web"],
        **fields,  # type: ignore[arg-type]
    )


@pytest.fixture
def mock_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


async def run(agents: FakeAgents, checks: list[CheckConfig], seconds: float, metrics: BackendMetrics) -> None:
    scheduler = BackendScheduler(agents, list_entities, lambda c: ([], []), metrics, wall_clock=wall)
    async with trio.open_nursery() as nursery:
        await nursery.start(scheduler.run)
        scheduler.update([*checks, check("local")])  # an ordinary check is the agents' to schedule
        assert scheduler.scheduled == [("default", c.metadata.name) for c in checks]
        await trio.sleep(seconds)
        nursery.cancel_scope.cancel()


async def test_each_run_goes_to_one_agent_in_turn(mock_clock: trio.testing.MockClock) -> None:
    agents, metrics = FakeAgents("web1", "web2", "web3"), BackendMetrics.create()
    await run(agents, [check(round_robin=True)], 60, metrics)
    assert [agent for _, agent, _ in agents.asked] == ["web1", "web2", "web3", "web1", "web2", "web3"]
    times = [t for t, _, _ in agents.asked]
    assert [b - a for a, b in itertools.pairwise(times)] == pytest.approx([10] * 5)
    assert metrics.registry.get_sample_value("pipeline_scheduled_requests_total", {"check": "rr"}) == 6


async def test_an_unreachable_agent_gives_its_turn_to_the_next(mock_clock: trio.testing.MockClock) -> None:
    agents, metrics = FakeAgents("web1", "web2"), BackendMetrics.create()
    agents.unreachable = {"web2"}  # still listed, gone by the time it is asked
    await run(agents, [check(round_robin=True)], 30, metrics)
    assert [agent for _, agent, _ in agents.asked] == ["web1", "web1", "web1"]


async def test_no_agent_is_counted_not_run(mock_clock: trio.testing.MockClock) -> None:
    agents, metrics = FakeAgents(), BackendMetrics.create()
    await run(agents, [check(round_robin=True)], 30, metrics)
    assert agents.asked == []
    assert metrics.registry.get_sample_value("pipeline_scheduled_skipped_total", {"reason": "no_agent"}) == 3


async def test_proxy_requests_run_once_per_matching_entity_on_every_agent(mock_clock: trio.testing.MockClock) -> None:
    agents, metrics = FakeAgents("web1", "web2"), BackendMetrics.create()
    requests = ProxyRequests(entity_attributes=["entity.entity_class == 'proxy'", "entity.labels.region == 'eu'"])
    await run(agents, [check("ping", proxy_requests=requests)], 10, metrics)
    assert [(agent, entity) for _, agent, entity in agents.asked] == [("*web", "sw1"), ("*web", "sw2")]


async def test_round_robin_proxy_requests_give_each_entity_to_one_agent(mock_clock: trio.testing.MockClock) -> None:
    agents, metrics = FakeAgents("web1", "web2"), BackendMetrics.create()
    requests = ProxyRequests(entity_attributes=["entity.entity_class == 'proxy'"])
    await run(agents, [check("ping", proxy_requests=requests, round_robin=True)], 10, metrics)
    assert [(agent, entity) for _, agent, entity in agents.asked] == [("web1", "sw1"), ("web2", "sw2"), ("web1", "sw3")]


async def test_splay_spreads_the_executions_over_the_coverage(mock_clock: trio.testing.MockClock) -> None:
    agents, metrics = FakeAgents("web1"), BackendMetrics.create()
    requests = ProxyRequests(entity_attributes=["entity.entity_class == 'proxy'"], splay=True, splay_coverage=60)
    await run(agents, [check("ping", proxy_requests=requests)], 20, metrics)
    times = [t for t, _, _ in agents.asked][:3]  # the first run's three
    assert [b - a for a, b in itertools.pairwise(times)] == pytest.approx([2.0, 2.0])  # 60 % of 10 s / 3


async def test_an_expression_failing_on_an_entity_skips_it_counted(mock_clock: trio.testing.MockClock) -> None:
    agents, metrics = FakeAgents("web1"), BackendMetrics.create()
    requests = ProxyRequests(entity_attributes=["entity.labels.region == 'eu'", "entity.system.x.y == 1"])
    await run(agents, [check("ping", proxy_requests=requests)], 10, metrics)
    assert agents.asked == []
    assert metrics.registry.get_sample_value("pipeline_scheduled_skipped_total", {"reason": "entity_error"}) == 3


async def test_no_round_robin_run_inside_a_subdue_window(mock_clock: trio.testing.MockClock) -> None:
    """As Sensu Go's round robin scheduler: a window (here all of virtual time's first minute and
    on, every day) stops the backend's runs too, counted as skipped."""
    start = datetime.fromtimestamp(wall(), tz=UTC)
    window = TimeWindowRepeated(begin=start.isoformat(), end=(start + timedelta(hours=1)).isoformat(), repeat=["daily"])
    agents, metrics = FakeAgents("web1", "web2"), BackendMetrics.create()
    await run(agents, [check(round_robin=True, subdues=[window])], 60, metrics)
    assert agents.asked == []
    assert metrics.registry.get_sample_value("pipeline_scheduled_skipped_total", {"reason": "subdued"}) == 6


async def test_a_check_with_no_next_run_ends_alone_counted(mock_clock: trio.testing.MockClock) -> None:
    """A round robin check whose cron never fires (come without the resources' checks): its
    schedule ends, counted, and the backend's other checks go on."""
    agents, metrics = FakeAgents("web1"), BackendMetrics.create()
    await run(agents, [check("never", round_robin=True, cron="0 0 31 4 *"), check(round_robin=True)], 30, metrics)
    assert [agent for _, agent, _ in agents.asked] == ["web1"] * 3
    assert metrics.registry.get_sample_value("pipeline_scheduled_skipped_total", {"reason": "unschedulable"}) == 1

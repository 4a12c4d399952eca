"""Who runs a backend-scheduled check next, and how proxy executions are spread."""

from __future__ import annotations

import pytest

from pipeline.core.backend_schedule import backend_scheduled, next_agents, splay_step
from pipeline.model import CheckConfig
from pipeline.model.check import ProxyRequests


def test_turns_rotate_through_the_connected_agents_in_name_order() -> None:
    connected = ["web2", "web1", "web3"]
    last, turns = None, []
    for _ in range(6):
        (last,) = next_agents(connected, last)
        turns.append(last)
    assert turns == ["web1", "web2", "web3", "web1", "web2", "web3"]


def test_an_agent_that_leaves_gives_its_turn_to_the_next() -> None:
    assert next_agents(["web1", "web3"], "web1") == ["web3"]  # web2 was next: it left
    assert next_agents(["web1", "web3"], "web2") == ["web3"]  # the last one left
    assert next_agents(["web1"], "web1") == ["web1"]  # alone, it runs every time


def test_an_agent_that_joins_takes_its_place_in_the_ring() -> None:
    assert next_agents(["web1", "web2", "web3"], "web1") == ["web2"]
    assert next_agents(["web1", "web3"], "web3") == ["web1"]


def test_several_turns_at_once_for_proxy_entities() -> None:
    assert next_agents(["b", "a"], None, 5) == ["a", "b", "a", "b", "a"]
    assert next_agents(["a", "b"], "a", 2) == ["b", "a"]
    assert next_agents([], "a", 3) == []
    assert next_agents(["a", "a", "b"], None, 2) == ["a", "b"]  # two connections of one agent: one turn


def test_which_checks_the_backend_schedules() -> None:
    assert not backend_scheduled(CheckConfig(interval=10))
    assert backend_scheduled(CheckConfig(interval=10, round_robin=True))
    assert backend_scheduled(CheckConfig(interval=10, proxy_requests=ProxyRequests()))


@pytest.mark.parametrize(
    ("window", "coverage", "executions", "step"),
    [(60, 90, 3, 18.0), (60, 0, 3, 18.0), (10, 100, 4, 2.5), (60, 50, 0, 0.0), (0, 90, 3, 0.0)],
)
def test_splay_spreads_executions_over_the_coverage_of_the_interval(
    window: float, coverage: int, executions: int, step: float
) -> None:
    assert splay_step(window, coverage, executions) == pytest.approx(step)

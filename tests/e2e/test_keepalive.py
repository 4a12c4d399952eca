"""Keepalives, check ttl, registration and deregistration: a real backend and real agents."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from pipeline.agent.agent import Agent
from pipeline.agent.settings import AgentConfig
from tests.support import EventPipe, admin_headers, capture_handler, loopback_backend, write_config

pytestmark = pytest.mark.e2e

#: Short keepalive timeouts, so that silence shows within seconds.
FAST_KEEPALIVES: dict[str, Any] = {"keepalive_interval": 1, "keepalive_warning_timeout": 2,
                                   "keepalive_critical_timeout": 3}  # fmt: skip


def handlers(pipe: Path, *names: str) -> str:
    return "---".join(capture_handler(pipe, name) for name in names)


def agent_config(backend: tuple[str, int], **kwargs: Any) -> AgentConfig:
    return AgentConfig(name="web1", backend_addrs=[backend], subscriptions=["web"], api_addr=None, **kwargs)


async def run_in(nursery: trio.Nursery, agent: Agent) -> trio.CancelScope:
    """Start ``agent``; cancelling the returned scope silences it (no clean stop)."""
    scope = trio.CancelScope()

    async def run(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        with scope:
            await agent.run(task_status=task_status)

    await nursery.start(run)
    return scope


def keepalive_with(status: int) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e["check"]["metadata"]["name"] == "keepalive" and e["check"]["status"] == status


async def test_a_silent_agent_warns_then_goes_critical_and_resolves_when_it_returns(tmp_path: Path) -> None:
    pipe = EventPipe(tmp_path / "events.fifo")
    backend = loopback_backend(tmp_path, write_config(tmp_path / "config", handlers(pipe.path, "keepalive")))
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            addresses = await nursery.start(backend.run)
            labels = {"password": "hunter2", "region": "eu"}
            first = Agent(agent_config(addresses.transport, labels=labels, **FAST_KEEPALIVES))
            silence = await run_in(nursery, first)
            alive = await pipe.next_matching(keepalive_with(0))
            silence.cancel()  # the agent dies without a word
            warning = await pipe.next_matching(keepalive_with(1))
            critical = await pipe.next_matching(keepalive_with(2))
            await run_in(nursery, Agent(agent_config(addresses.transport, **FAST_KEEPALIVES)))
            back = await pipe.next_matching(keepalive_with(0))
            nursery.cancel_scope.cancel()
    await pipe.aclose()
    assert alive["check"]["output"].startswith("Keepalive last sent from web1 at ")
    assert alive["check"]["handlers"] == ["keepalive"]
    assert (alive["check"]["interval"], alive["check"]["timeout"], alive["check"]["ttl"]) == (1, 2, 3)
    assert alive["entity"]["metadata"]["labels"] == {"password": "REDACTED", "region": "eu"}
    assert alive["entity"]["system"]["hostname"]
    assert warning["check"]["output"] == "No keepalive sent from web1 for 2 seconds (>= 2)"
    assert critical["check"]["output"] == "No keepalive sent from web1 for 3 seconds (>= 3)"
    assert critical["check"]["state"] == "failing"
    assert back["check"]["state"] == "passing"
    assert [h["status"] for h in back["check"]["history"]][-3:] == [1, 2, 0]  # a resolution
    assert back["entity"]["last_seen"] >= critical["timestamp"]


async def test_keepalive_state_survives_a_backend_restart(tmp_path: Path) -> None:
    pipe = EventPipe(tmp_path / "events.fifo")
    config = write_config(tmp_path / "config", handlers(pipe.path, "keepalive"))
    first_backend = loopback_backend(tmp_path, config)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            addresses = await nursery.start(first_backend.run)
            silence = await run_in(nursery, Agent(agent_config(addresses.transport, **FAST_KEEPALIVES)))
            await pipe.next_matching(keepalive_with(0))
            silence.cancel()
            await pipe.next_matching(keepalive_with(1))
            await first_backend.stop()  # the backend restarts while the agent is still silent
            await nursery.start(loopback_backend(tmp_path, config).run)
            after_restart = await pipe.next_matching(lambda e: e["check"]["metadata"]["name"] == "keepalive")
            nursery.cancel_scope.cancel()
    await pipe.aclose()
    assert after_restart["check"]["status"] == 2  # still silent, and longer: critical
    assert [h["status"] for h in after_restart["check"]["history"]][-3:] == [0, 1, 2]  # the history carried on


async def test_a_check_past_its_ttl_fails_and_keeps_failing_every_ttl(tmp_path: Path) -> None:
    pipe = EventPipe(tmp_path / "events.fifo")
    backend = loopback_backend(tmp_path, write_config(tmp_path / "config", handlers(pipe.path, "capture")))
    event = {"entity": {"metadata": {"name": "db1"}},
             "check": {"metadata": {"name": "backup"}, "status": 0, "output": "backup done", "interval": 1, "ttl": 2,
                       "handlers": ["capture"]}}  # fmt: skip
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            addresses = await nursery.start(backend.run)
            async with httpx.AsyncClient(base_url=addresses.api_url, headers=admin_headers(backend)) as client:
                response = await client.post("/api/core/v2/namespaces/default/events", json=event)
                assert response.status_code == 201
            posted = await pipe.next_event()
            first = await pipe.next_event()
            second = await pipe.next_event()
            nursery.cancel_scope.cancel()
    await pipe.aclose()
    assert posted["check"]["output"] == "backup done"
    for before, expired in ((posted, first), (first, second)):
        assert expired["entity"]["metadata"]["name"] == "db1"
        assert expired["check"]["status"] == 1
        # Whole seconds since the result before it, as Sensu counts them: the ttl (2), or 3 when the expiry falls
        # in the next second of the clock (execution times are whole seconds, deadlines are not).
        elapsed = expired["check"]["executed"] - before["check"]["executed"]
        assert elapsed in (2, 3)
        assert expired["check"]["output"] == f"Last check execution was {elapsed} seconds ago"
    assert [h["status"] for h in second["check"]["history"]] == [0, 1, 1]
    assert second["check"]["occurrences"] == 2


async def test_agents_register_and_a_deregistering_agent_removes_its_entity_on_a_clean_stop(tmp_path: Path) -> None:
    pipe = EventPipe(tmp_path / "events.fifo")
    config = write_config(tmp_path / "config", handlers(pipe.path, "registration", "cleanup", "capture"))
    backend = loopback_backend(tmp_path, config)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            addresses = await nursery.start(backend.run)
            agent = Agent(agent_config(addresses.transport, deregister=True, deregistration_handler="cleanup",
                                       keepalive_handlers=["capture"], **FAST_KEEPALIVES))  # fmt: skip
            await run_in(nursery, agent)
            registered = await pipe.next_matching(lambda e: e["check"]["metadata"]["name"] == "registration")
            await pipe.next_matching(keepalive_with(0))
            keepalive = await pipe.next_matching(keepalive_with(0))  # a second, a second after the handshake
            async with httpx.AsyncClient(base_url=addresses.api_url, headers=admin_headers(backend)) as client:
                entities = (await client.get("/api/core/v2/namespaces/default/entities")).json()
                await agent.stop()
                # handlers run side by side: these two arrive in either order
                after_stop = {}
                while set(after_stop) != {"keepalive", "deregistration"}:
                    event = await pipe.next_event()
                    if not event["check"]["output"].startswith("Keepalive last sent"):  # not a late keepalive
                        after_stop[event["check"]["metadata"]["name"]] = event
                resolved, deregistered = after_stop["keepalive"], after_stop["deregistration"]
                gone = await client.get("/api/core/v2/namespaces/default/entities/web1")
                events = (await client.get("/api/core/v2/namespaces/default/events/web1")).json()
            nursery.cancel_scope.cancel()
    await pipe.aclose()
    assert registered["check"]["status"] == 1
    assert registered["entity"]["metadata"]["name"] == "web1"
    assert [e["metadata"]["name"] for e in entities] == ["web1"]
    assert entities[0]["entity_class"] == "agent"
    assert entities[0]["deregister"] is True
    assert entities[0]["last_seen"] >= keepalive["timestamp"]  # from the last keepalive, not the handshake
    assert keepalive["timestamp"] > registered["timestamp"]
    assert resolved["check"]["status"] == 0
    assert resolved["check"]["output"] == "Resolving due to entity deregistering"
    assert deregistered["check"]["handlers"] == ["cleanup"]
    assert gone.status_code == 404
    assert events == []

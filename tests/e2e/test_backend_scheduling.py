"""Round robin and proxy checks: scheduled by the backend, run by real agents, on loopback."""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from pipeline.agent.agent import Agent
from pipeline.agent.settings import AgentConfig
from tests.support import EventPipe, admin_headers, capture_handler, loopback_backend, write_config

pytestmark = pytest.mark.e2e

NS = "/api/core/v2/namespaces/default"

#: ``turns``'s runs fall half way through each second (the backend's grid phase for that
#: name), so that one run's ``executed`` second is never the next's.
ROUND_ROBIN = """
    ---
    type: CheckConfig
    api_version: core/v2
    metadata: {name: turns}
    spec:
      command: echo ran on {{ .name }}
      interval: 1
      round_robin: true
      subscriptions: [web]
      handlers: [capture]
    """


def name_of(event: dict[str, Any]) -> str:
    return str(event["entity"]["metadata"]["name"])


def is_check(name: str) -> Any:
    return lambda event: event["check"]["metadata"]["name"] == name


async def start_agent(nursery: trio.Nursery, name: str, transport: tuple[str, int]) -> trio.CancelScope:
    """An agent subscribed to ``web`` in a cancel scope of its own (cancelled: it is gone)."""
    agent = Agent(AgentConfig(name=name, backend_addrs=[transport], subscriptions=["web"], api_addr=None))

    async def run(*, task_status: trio.TaskStatus[trio.CancelScope] = trio.TASK_STATUS_IGNORED) -> None:
        with trio.CancelScope() as scope:
            task_status.started(scope)
            await agent.run()

    scope: trio.CancelScope = await nursery.start(run)
    await agent.connected.wait()
    return scope


async def test_round_robin_runs_each_execution_on_one_agent_and_moves_on_when_one_goes(tmp_path: Path) -> None:
    pipe = EventPipe(tmp_path / "events.fifo")
    config = write_config(tmp_path / "config", capture_handler(pipe.path) + ROUND_ROBIN)
    backend = loopback_backend(tmp_path, config)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            addresses = await nursery.start(backend.run)
            web1 = await start_agent(nursery, "web1", addresses.transport)
            await start_agent(nursery, "web2", addresses.transport)
            seen: set[str] = set()
            while seen != {"web1", "web2"}:  # both connected and taking turns
                seen.add(name_of(await pipe.next_matching(is_check("turns"))))
            turns = [await pipe.next_matching(is_check("turns")) for _ in range(6)]
            web1.cancel()
            stopped = time.time()
            after: list[dict[str, Any]] = []
            with trio.fail_after(1 + 1.5):  # the next execution within one interval (plus the handler's way)
                while not after:
                    event = await pipe.next_matching(is_check("turns"))
                    if event["check"]["executed"] >= int(stopped):
                        after.append(event)
            after += [await pipe.next_matching(is_check("turns")) for _ in range(3)]
            nursery.cancel_scope.cancel()
    await pipe.aclose()
    names = [name_of(e) for e in turns]
    assert names in (["web1", "web2"] * 3, ["web2", "web1"] * 3), names  # both get turns, in turn
    executed = [e["check"]["executed"] for e in turns]
    assert [b - a for a, b in itertools.pairwise(executed)] == [1] * 5  # one agent per execution
    assert all(e["check"]["output"] == f"ran on {name_of(e)}\n" for e in turns)
    assert [name_of(e) for e in after] == ["web2"] * 4  # web1's turns go to web2
    executed = [e["check"]["executed"] for e in after]
    assert [b - a for a, b in itertools.pairwise(executed)] == [1] * 3  # none lost


PROXY_CHECK = {
    "metadata": {"name": "ping-switches"},
    "command": "echo ping {{ .name }} in {{ .labels.region }}",
    "interval": 1,
    "publish": True,
    "subscriptions": ["web"],
    "handlers": ["capture"],
    "proxy_requests": {"entity_attributes": ["entity.entity_class == 'proxy'", "entity.labels.region == 'eu'"]},
}


def proxy_entity(name: str, region: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "default", "labels": {"region": region}}, "entity_class": "proxy"}


async def test_proxy_requests_run_once_per_matching_entity_with_its_tokens(tmp_path: Path) -> None:
    pipe = EventPipe(tmp_path / "events.fifo")
    config = write_config(tmp_path / "config", capture_handler(pipe.path))
    backend = loopback_backend(tmp_path, config)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            addresses = await nursery.start(backend.run)
            await start_agent(nursery, "web1", addresses.transport)
            async with httpx.AsyncClient(base_url=addresses.api_url, headers=admin_headers(backend)) as client:
                for name, region in [("sw1", "eu"), ("sw2", "eu"), ("sw3", "us")]:
                    created = await client.put(f"{NS}/entities/{name}", json=proxy_entity(name, region))
                    assert created.status_code in (200, 201), created.text
                bad = {**PROXY_CHECK, "metadata": {"name": "bad"},
                       "proxy_requests": {"entity_attributes": ["entity.labels.region.startsWith('e'"]}}  # fmt: skip
                refused = await client.put(f"{NS}/checks/bad", json=bad)
                assert (await client.put(f"{NS}/checks/ping-switches", json=PROXY_CHECK)).status_code == 201
                runs = [await pipe.next_matching(is_check("ping-switches")) for _ in range(4)]
            nursery.cancel_scope.cancel()
    await pipe.aclose()
    assert refused.status_code == 400
    assert "spec.proxy_requests.entity_attributes[0]: invalid JavaScript" in refused.json()["message"]
    assert sorted(name_of(e) for e in runs[:2]) == ["sw1", "sw2"]  # one run: one execution per match
    assert sorted(name_of(e) for e in runs[2:]) == ["sw1", "sw2"]  # the next run: again
    for event in runs:
        assert event["check"]["output"] == f"ping {name_of(event)} in eu\n"
        assert event["check"]["proxy_entity_name"] == name_of(event)
        assert event["check"]["processed_by"] == "web1"
        assert event["entity"]["entity_class"] == "proxy"

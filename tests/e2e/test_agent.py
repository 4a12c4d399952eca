"""A real agent against a real backend, in one trio run, on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from pipeline.agent.agent import Agent, AgentConfig
from tests.support import EventPipe, capture_handler, loopback_backend, write_config

pytestmark = pytest.mark.e2e


def resources_yaml(pipe: Path) -> str:
    checks = "".join(
        f"""
        ---
        type: CheckConfig
        api_version: core/v2
        metadata: {{name: {name}}}
        spec:
          command: {command}
          interval: 1
          timeout: 1
          publish: true
          subscriptions: [{subscription}]
          handlers: [capture]
        """
        for name, command, subscription in [
            ("mine", "echo mine", "web"),
            ("hangs", "sleep 30", "web"),
            ("not-mine", "echo other", "db"),
        ]
    )
    return capture_handler(pipe) + checks


async def test_agent_runs_only_its_checks_and_times_out_hung_ones(tmp_path: Path) -> None:
    pipe = EventPipe(tmp_path / "events.fifo")
    config = write_config(tmp_path / "config", resources_yaml(pipe.path))
    backend = loopback_backend(tmp_path, config)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            addresses = await nursery.start(backend.run)
            agent = Agent(
                AgentConfig(name="web1", backend_addrs=[addresses.transport], subscriptions=["web"], api_addr=None)
            )
            await nursery.start(agent.run)
            seen: dict[str, dict[str, object]] = {}
            while set(seen) != {"mine", "hangs"}:
                event = await pipe.next_event()
                seen[event["check"]["metadata"]["name"]] = event["check"]
                assert event["entity"]["metadata"]["name"] == "web1"
            assert seen["mine"]["output"] == "mine\n"
            assert seen["mine"]["status"] == 0
            assert seen["hangs"]["status"] == 2
            assert seen["hangs"]["output"] == "Execution timed out\n"
            assert agent.scheduler.scheduled == ["hangs", "mine"]
            nursery.cancel_scope.cancel()
    await pipe.aclose()

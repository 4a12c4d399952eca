"""Nothing is lost when the backend is away or the agent restarts: the spool keeps it."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import trio

from pipeline.agent.agent import Agent
from pipeline.agent.settings import AgentConfig
from pipeline.model import Event
from tests.support import EventPipe, capture_handler, loopback_backend, write_config

pytestmark = pytest.mark.e2e

CHECK = """
    ---
    type: CheckConfig
    api_version: core/v2
    metadata: {name: beat}
    spec:
      command: echo beat
      interval: 1
      subscriptions: [web]
      handlers: [capture]
    """


class CountingAgent(Agent):
    """The real agent, telling the test about every result of the check it produces."""

    def __init__(self, config: AgentConfig) -> None:
        super().__init__(config)
        self.produced: list[str] = []
        self.changed = trio.Event()

    async def submit(self, event: Event) -> None:
        await super().submit(event)
        if event.check_name != "beat":
            return  # agent_started and the like
        self.produced.append(event.id)
        self.changed.set()
        self.changed = trio.Event()

    async def wait_for(self, count: int) -> None:
        while len(self.produced) < count:
            await self.changed.wait()


def free_tcp_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_events_made_while_the_backend_is_away_survive_an_agent_restart(tmp_path: Path) -> None:
    """The agent keeps its checks and its unacknowledged events on disk across a restart."""
    pipe = EventPipe(tmp_path / "events.fifo")
    port = free_tcp_port()
    agent_data = tmp_path / "agent"
    backend = loopback_backend(tmp_path, write_config(tmp_path / "config", capture_handler(pipe.path) + CHECK))
    backend.config.transport_addr = ("127.0.0.1", port)
    # The backend must first hand the agent its checks, so: backend up, checks received, backend down.
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            backend_scope = trio.CancelScope()

            async def run_backend(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
                with backend_scope:
                    await backend.run(task_status=task_status)

            await nursery.start(run_backend)
            first = CountingAgent(AgentConfig(name="web1", backend_addrs=[("127.0.0.1", port)], subscriptions=["web"],
                                              api_addr=None, data_dir=agent_data))  # fmt: skip
            agent_scope = trio.CancelScope()

            async def run_agent(agent: Agent, scope: trio.CancelScope, task_status: trio.TaskStatus[None]) -> None:
                with scope:
                    await agent.run(task_status=task_status)

            await nursery.start(run_agent, first, agent_scope)
            await first.wait_for(1)
            backend_scope.cancel()  # the backend goes away ...
            await first.wait_for(4)  # ... while the agent keeps running its check
            agent_scope.cancel()  # then the agent stops too, holding a spool
        produced = list(first.produced)
        spooled = first.spool.count

        # Later: the agent starts again (same data directory), and so does the backend.
        async with trio.open_nursery() as nursery:
            backend = loopback_backend(tmp_path, write_config(tmp_path / "config", capture_handler(pipe.path) + CHECK))
            backend.config.transport_addr = ("127.0.0.1", port)
            second = CountingAgent(AgentConfig(name="web1", backend_addrs=[("127.0.0.1", port)], subscriptions=["web"],
                                               api_addr=None, data_dir=agent_data))  # fmt: skip
            await nursery.start(run_agent, second, trio.CancelScope())
            await second.wait_for(1)  # it runs the checks it last received, with no backend yet
            await nursery.start(backend.run)
            delivered: set[str] = set()
            while not set(produced) <= delivered:
                delivered.add((await pipe.next_event())["id"])
            stored = await backend.store.known_ids(produced)
            log_count = await backend.store.count_log()
            latest = await backend.store.get_event("default", "web1", "beat")
            nursery.cancel_scope.cancel()
    await pipe.aclose()
    assert spooled >= 3  # produced while the backend was away, kept across the restart
    assert stored == set(produced)  # every event, stored ...
    assert log_count >= len(produced)
    assert latest is not None
    assert latest.check is not None
    history = [h.executed for h in latest.check.history]
    assert history == sorted(history)  # ... and replayed in order

"""Host sources switched on by name in a real ``pipeline agent`` process (a test source stands
for oom, packages, docker and kubernetes), and ``pipeline event send`` to a real backend and
through a real agent whose backend is down."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

from pipeline.agent.agent import Agent
from pipeline.agent.settings import AgentConfig
from pipeline.agent.sources import SourceContext
from pipeline.core.host_events import host_event
from pipeline.core.push.common import CHANGE, CHANGE_LABEL
from pipeline.model import Event
from tests.support import EventPipe, capture_handler, loopback_backend, pipeline_command, served, write_config

pytestmark = pytest.mark.e2e

#: ``pipeline`` with the test source ``tick`` registered, as the integrator registers the real ones.
WITH_TICK = [sys.executable, "-c", (
    "import sys\n"
    "from pipeline.agent import sources\n"
    "from tests.e2e.test_agent_sources import Tick\n"
    "sources.SOURCES['tick'] = Tick\n"
    "from pipeline.cli.main import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)]  # fmt: skip


@dataclass
class Tick:
    """Says once what it was given, as a change event of the agent's entity (to the capture handler)."""

    context: SourceContext
    name: str = "tick"

    async def run(
        self, send: trio.MemorySendChannel[Event], *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started()
        settings = self.context.settings
        paths = ",".join(str(p) for p in settings.package_paths)
        event = host_event(self.context.entity, name="tick", output=f"docker={settings.docker_socket} paths={paths}",
                           status=0, timestamp=1_700_000_000, labels={"source": "tick"})  # fmt: skip
        assert event.check is not None
        event.check.handlers = ["capture"]
        await send.send(event)
        await trio.sleep_forever()


async def test_an_unknown_source_is_refused_naming_it_and_the_known_ones(tmp_path: Path) -> None:
    with trio.fail_after(30):
        result = await trio.run_process([*WITH_TICK, "agent", "--source", "tick,dockr", "--data", str(tmp_path)],
                                        capture_stdout=True, capture_stderr=True, check=False)  # fmt: skip
    assert result.returncode == 2
    assert (
        result.stderr.decode()
        == "pipeline agent: error: --source 'dockr': unknown source (known: docker, kubernetes, oom, packages, tick)\n"
    )


async def test_a_source_named_in_the_config_file_runs_in_the_agent_with_its_settings(tmp_path: Path) -> None:
    pipe = EventPipe(tmp_path / "events.fifo")
    backend = loopback_backend(tmp_path, write_config(tmp_path / "config", capture_handler(pipe.path)))
    settings = tmp_path / "agent.yml"
    settings.write_text("source: [tick]\ndocker-socket: /run/test-docker.sock\npackage-paths: [/opt/a, /opt/b]\n")
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            addresses = await nursery.start(backend.run)
            transport = f"{addresses.transport[0]}:{addresses.transport[1]}"
            process = await trio.lowlevel.open_process(
                [*WITH_TICK, "agent", "--config-file", str(settings), "--name", "host7", "--backend-addr", transport,
                 "--package-paths", "/opt/c", "--data", str(tmp_path / "agent"), "--api-addr", "",
                 "--socket-addr", "", "--statsd-addr", ""], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            try:
                event = await pipe.next_matching(lambda e: e["check"]["metadata"]["name"] == "tick")
            finally:
                process.send_signal(signal.SIGTERM)
                await process.wait()
            nursery.cancel_scope.cancel()
    await pipe.aclose()
    assert event["entity"]["metadata"]["name"] == "host7"
    assert event["check"]["output"] == "docker=/run/test-docker.sock paths=/opt/a,/opt/b,/opt/c"
    assert event["check"]["metadata"]["labels"] == {"source": "tick", CHANGE_LABEL: CHANGE}


def send_command(*args: str) -> list[str]:
    return pipeline_command("event", "send", "--type", "deployment", "--message", "web 2.4.1 deployed",
                            "--tag", "env:prod", "--tag", "team=web", "--link", "Release notes: https://x.test/2.4.1",
                            *args)  # fmt: skip


async def test_event_send_posts_a_change_event_to_the_backend(tmp_path: Path) -> None:
    backend = loopback_backend(tmp_path, write_config(tmp_path / "config", ""))
    async with served(backend) as api:
        result = await trio.run_process(
            send_command("--host", "web9", "--status", "1", "--api-url", api.addresses.api_url,
                         "--api-key", api.api_key), capture_stdout=True,
        )  # fmt: skip
        response = await api.client.get("/api/core/v2/namespaces/default/events/web9/deployment")
    assert result.stdout.decode().endswith(f"(deployment) sent to the backend at {api.addresses.api_url}\n")
    assert response.status_code == 200
    event = response.json()
    check = event["check"]
    assert (event["entity"]["metadata"]["name"], event["entity"]["entity_class"]) == ("web9", "proxy")
    assert (check["output"], check["status"]) == ("web 2.4.1 deployed", 1)
    assert check["metadata"]["labels"] == {"env": "prod", "team": "web", CHANGE_LABEL: CHANGE}
    assert check["metadata"]["annotations"] == {"link/Release notes": "https://x.test/2.4.1"}


async def test_event_send_through_an_agent_is_spooled_until_the_backend_starts(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a free port for the backend that is not there yet
        probe.bind(("127.0.0.1", 0))
        transport = probe.getsockname()
    agent = Agent(AgentConfig(name="host8", backend_addrs=[transport], api_addr=("127.0.0.1", 0),
                              data_dir=tmp_path / "agent"))  # fmt: skip
    backend = loopback_backend(tmp_path, write_config(tmp_path / "config", ""))
    backend.config.transport_addr = transport
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            api = (await nursery.start(agent.run)).api
            assert api is not None
            sent = await trio.run_process(send_command("--agent", "--agent-url", f"http://{api[0]}:{api[1]}"),
                                          capture_stdout=True)  # fmt: skip
            event_id = sent.stdout.decode().split()[1]
            acknowledged = agent.delivery.acknowledged_event(event_id)  # the backend is not up: not yet acked
            async with served(backend) as backend_api:
                await acknowledged.wait()
                response = await backend_api.client.get("/api/core/v2/namespaces/default/events/host8/deployment")
            nursery.cancel_scope.cancel()
    assert "(spooled)" in sent.stdout.decode()
    event = response.json()
    assert (event["id"], event["entity"]["metadata"]["name"], event["check"]["output"]) == (
        event_id, "host8", "web 2.4.1 deployed")  # fmt: skip
    assert event["check"]["metadata"]["annotations"] == {"link/Release notes": "https://x.test/2.4.1"}
    assert agent.metrics.registry.get_sample_value("pipeline_agent_source_events_total", {"source": "api"}) == 1
    assert json.loads(json.dumps(event["check"]["metadata"]["labels"]))[CHANGE_LABEL] == CHANGE

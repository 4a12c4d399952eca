"""A real agent against a real backend, in one trio run, on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from pipeline.agent.agent import Agent, AgentConfig
from tests.support import REPO, EventPipe, capture_handler, loopback_backend, write_config

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


MONITORING_PLUGINS = Path("/usr/lib/nagios/plugins")


async def test_perfdata_of_real_monitoring_plugins_becomes_metrics(tmp_path: Path) -> None:
    assert (MONITORING_PLUGINS / "check_load").exists(), "install Debian's monitoring-plugins-basic (.ci/run does)"
    pipe = EventPipe(tmp_path / "events.fifo")
    check = f"""
        ---
        type: CheckConfig
        api_version: core/v2
        metadata: {{name: load}}
        spec:
          command: {MONITORING_PLUGINS}/check_load -w 50,40,30 -c 100,80,60
          interval: 1
          subscriptions: [web]
          handlers: [capture]
          output_metric_format: nagios_perfdata
          output_metric_handlers: [capture]
          output_metric_tags: [{{name: source, value: monitoring-plugins}}]
        """
    config = write_config(tmp_path / "config", capture_handler(pipe.path) + check)
    backend = loopback_backend(tmp_path, config)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            addresses = await nursery.start(backend.run)
            agent = Agent(
                AgentConfig(name="web1", backend_addrs=[addresses.transport], subscriptions=["web"], api_addr=None)
            )
            await nursery.start(agent.run)
            event = await pipe.next_event()
            nursery.cancel_scope.cancel()
    await pipe.aclose()
    assert event["check"]["status"] == 0
    assert event["check"]["output"].startswith("LOAD OK - total load average: ")
    assert event["metrics"]["handlers"] == ["capture"]
    points = event["metrics"]["points"]
    assert [p["name"] for p in points] == ["load1", "load5", "load15"]
    for point in points:
        assert point["timestamp"] == event["check"]["executed"]
        assert point["tags"] == [{"name": "source", "value": "monitoring-plugins"}]
        assert isinstance(point["value"], float)


async def test_hooks_sent_by_the_backend_run_on_a_failing_check(tmp_path: Path) -> None:
    pipe = EventPipe(tmp_path / "events.fifo")
    resources = """
        ---
        type: HookConfig
        api_version: core/v2
        metadata: {name: disk-usage}
        spec:
          command: disk-usage
          timeout: 10
        ---
        type: CheckConfig
        api_version: core/v2
        metadata: {name: failing}
        spec:
          command: echo 'DISK CRITICAL - full'; exit 2
          interval: 1
          subscriptions: [web]
          handlers: [capture]
          check_hooks: [{critical: [disk-usage]}, {ok: [disk-usage]}]
        """
    config = write_config(tmp_path / "config", capture_handler(pipe.path) + resources)
    backend = loopback_backend(tmp_path, config)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            addresses = await nursery.start(backend.run)
            agent = Agent(AgentConfig(name="web1", backend_addrs=[addresses.transport], subscriptions=["web"], api_addr=None,
                                      plugin_dirs=[REPO / "hooks"]))  # fmt: skip
            await nursery.start(agent.run)
            event = await pipe.next_event()
            nursery.cancel_scope.cancel()
    await pipe.aclose()
    assert event["check"]["status"] == 2
    (hook,) = event["check"]["hooks"]
    assert hook["metadata"]["name"] == "disk-usage"
    assert hook["command"] == "disk-usage"
    assert hook["status"] == 0
    assert hook["output"].startswith("Filesystem")

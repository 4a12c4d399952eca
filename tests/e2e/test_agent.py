"""A real agent against a real backend, in one trio run, on loopback."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import trio

from pipeline.agent.agent import Agent
from pipeline.agent.settings import AgentConfig
from tests.support import (
    REPO,
    EventPipe,
    capture_handler,
    loopback_backend,
    pipeline_command,
    start_backend_and_agent,
    write_config,
)

pytestmark = pytest.mark.e2e

T = TypeVar("T")


async def with_agent(tmp_path: Path, resources: str, read: Callable[[EventPipe], Awaitable[T]], **agent: Any) -> T:
    """Run a backend with ``resources`` plus a capture handler, and an agent subscribed to
    ``web``; return what ``read`` takes from the events the handler receives."""
    pipe = EventPipe(tmp_path / "events.fifo")
    config = write_config(tmp_path / "config", capture_handler(pipe.path) + resources)
    backend = loopback_backend(tmp_path, config)
    try:
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                addresses = await nursery.start(backend.run)
                config_ = AgentConfig(name="web1", backend_addrs=[addresses.transport], subscriptions=["web"],
                                      api_addr=None, **agent)  # fmt: skip
                await nursery.start(Agent(config_).run)
                result = await read(pipe)
                nursery.cancel_scope.cancel()
    finally:
        await pipe.aclose()
    return result


def resources_yaml() -> str:
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
    return checks


async def test_agent_runs_only_its_checks_and_times_out_hung_ones(tmp_path: Path) -> None:
    async def two_checks(pipe: EventPipe) -> dict[str, dict[str, Any]]:
        seen: dict[str, dict[str, Any]] = {}
        while set(seen) != {"mine", "hangs"}:
            event = await pipe.next_event()
            assert event["entity"]["metadata"]["name"] == "web1"
            seen[event["check"]["metadata"]["name"]] = event["check"]
        return seen

    seen = await with_agent(tmp_path, resources_yaml(), two_checks)
    assert seen["mine"]["output"] == "mine\n"
    assert seen["mine"]["status"] == 0
    assert seen["hangs"]["status"] == 2
    assert seen["hangs"]["output"] == "Execution timed out\n"


MONITORING_PLUGINS = Path("/usr/lib/nagios/plugins")


async def test_perfdata_of_real_monitoring_plugins_becomes_metrics(tmp_path: Path) -> None:
    assert (MONITORING_PLUGINS / "check_load").exists(), "install Debian's monitoring-plugins-basic (.ci/setup does)"
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
    event = await with_agent(tmp_path, check, EventPipe.next_event)
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
    event = await with_agent(tmp_path, resources, EventPipe.next_event, plugin_dirs=[REPO / "hooks"])
    assert event["check"]["status"] == 2
    (hook,) = event["check"]["hooks"]
    assert hook["metadata"]["name"] == "disk-usage"
    assert hook["command"] == "disk-usage"
    assert hook["status"] == 0
    assert hook["output"].startswith("Filesystem")


async def test_results_posted_to_the_local_api_are_spooled_then_delivered(tmp_path: Path) -> None:
    pipe = EventPipe(tmp_path / "events.fifo")
    backend = loopback_backend(tmp_path, write_config(tmp_path / "config", capture_handler(pipe.path)))
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            url = (await start_backend_and_agent(nursery, tmp_path, backend, api=True)).events_url
            async with httpx.AsyncClient() as client:
                cron_job = {"check": {"metadata": {"name": "backup"}, "status": 1, "output": "backup late",
                                      "handlers": ["capture"]}}  # fmt: skip
                assert (await client.post(url, json=cron_job)).status_code == 202
                about_a_switch = {"entity": {"metadata": {"name": "switch1"}},
                                  "check": {"metadata": {"name": "ping"}, "status": 2, "handlers": ["capture"]}}  # fmt: skip
                assert (await client.post(url, json=about_a_switch)).status_code == 202
                bad = await client.post(url, content=b'{"check": {"status": "x"}}')
                assert bad.status_code == 400
                assert bad.json() == {"code": 2, "message": "check.status: expected integer, got string 'x'"}
                nameless = await client.post(url, json={"check": {"status": 0}})
                assert nameless.json() == {"code": 2, "message": "check.metadata.name: a check needs a name"}
                assert (await client.get(url.replace("/events", "/version"))).json() == {"version": "0.1.0"}
                huge = await client.post(url, json={"check": {"metadata": {"name": "x"}, "output": "x" * (1 << 20)}})
                assert huge.status_code == 413
            received = {}
            while set(received) != {"backup", "ping"}:
                event = await pipe.next_event()
                received[event["check"]["metadata"]["name"]] = event
            nursery.cancel_scope.cancel()
    await pipe.aclose()
    backup, ping = received["backup"], received["ping"]
    assert backup["entity"]["metadata"]["name"] == "web1"
    assert backup["entity"]["entity_class"] == "agent"
    assert (backup["check"]["status"], backup["check"]["output"], backup["check"]["interval"]) == (1, "backup late", 1)
    assert ping["entity"]["metadata"]["name"] == "switch1"  # the backend made it about the proxy entity
    assert ping["entity"]["entity_class"] == "proxy"
    assert ping["check"]["proxy_entity_name"] == "switch1"


async def test_an_agent_whose_name_sensu_would_refuse_does_not_start() -> None:
    """Its name is its entity's, on every event: refused at start, naming the flag, rather than
    each of its events refused later."""
    result = await trio.run_process(
        pipeline_command("agent", "--name", "web 1!", "--backend-addr", "127.0.0.1:1", "--api-addr", "",
                         "--statsd-addr", "", "--socket-addr", ""),
        capture_stderr=True, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "pipeline: cannot run: --name: name 'web 1!' may contain only ASCII letters" in result.stderr.decode()


async def test_a_second_agent_on_the_same_data_directory_does_not_start(tmp_path: Path) -> None:
    """Two agents appending to one spool would corrupt it: the second is refused, naming it."""
    data = tmp_path / "agent"
    first = Agent(AgentConfig(name="web1", backend_addrs=[("127.0.0.1", 1)], api_addr=None, data_dir=data))
    async with trio.open_nursery() as nursery:
        await nursery.start(first.run)
        result = await trio.run_process(
            pipeline_command("agent", "--name", "web1", "--data", str(data), "--backend-addr", "127.0.0.1:1",
                             "--api-addr", "", "--statsd-addr", "", "--socket-addr", ""),
            capture_stderr=True, check=False,
        )  # fmt: skip
        nursery.cancel_scope.cancel()
    assert result.returncode == 1
    assert f"pipeline: cannot run: {data / 'spool'}: the spool is in use by another process" in result.stderr.decode()

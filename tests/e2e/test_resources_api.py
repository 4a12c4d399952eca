"""Resources changed through the API reach the agents and the pipeline at once, and stay changed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from pipeline.agent.agent import Agent
from pipeline.agent.settings import AgentConfig
from pipeline.backend.server import Backend, BackendAddresses
from tests.support import (
    REPO,
    EventPipe,
    admin_headers,
    capture_handler,
    loopback_backend,
    pipeline_command,
    write_config,
)

pytestmark = pytest.mark.e2e

NS = "/api/core/v2/namespaces/default"


async def backend_and_agent(
    nursery: trio.Nursery, tmp_path: Path, config: Path, agent: str, subscriptions: list[str]
) -> tuple[Backend, BackendAddresses]:
    """A backend on ``config`` and one agent connected to it, both run by ``nursery``."""
    backend = loopback_backend(tmp_path, config)
    addresses = await nursery.start(backend.run)
    running = Agent(AgentConfig(name=agent, backend_addrs=[addresses.transport], subscriptions=subscriptions,
                                api_addr=None))  # fmt: skip
    nursery.start_soon(running.run)
    await running.connected.wait()
    return backend, addresses


async def test_a_check_created_through_the_api_runs_on_a_connected_agent_and_survives_a_restart(tmp_path: Path) -> None:
    pipe = EventPipe(tmp_path / "events.fifo")
    config = write_config(tmp_path / "config", capture_handler(pipe.path))
    check = {"metadata": {"name": "made-by-api"}, "command": "echo hello from the API", "interval": 1,
             "subscriptions": ["web"], "handlers": ["capture"], "publish": True}  # fmt: skip
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            backend, addresses = await backend_and_agent(nursery, tmp_path, config, "web1", ["web"])
            async with httpx.AsyncClient(base_url=addresses.api_url, headers=admin_headers(backend)) as client:
                created = await client.put(f"{NS}/checks/made-by-api", json=check)
                event = await pipe.next_matching(lambda e: e["check"]["metadata"]["name"] == "made-by-api")
                listed = (await client.get(f"{NS}/checks")).json()
                bad = await client.put(f"{NS}/checks/broken", json={"command": "x", "interval": "often"})
                dangling = await client.put(f"{NS}/pipelines/p", json={"workflows": [{"name": "w",
                                                                                    "handler": {"name": "ghost"}}]})  # fmt: skip
                pipeline = await client.put(f"{NS}/pipelines/p", json={"workflows": [{"name": "w",
                                                                                    "handler": {"name": "capture"}}]})  # fmt: skip
                in_use = await client.delete(f"{NS}/handlers/capture")
            nursery.cancel_scope.cancel()
        async with trio.open_nursery() as nursery:  # a restart: the API's changes are still there
            backend = loopback_backend(tmp_path, config)
            addresses = await nursery.start(backend.run)
            async with httpx.AsyncClient(base_url=addresses.api_url, headers=admin_headers(backend)) as client:
                kept = await client.get(f"{NS}/checks/made-by-api")
                assert (await client.delete(f"{NS}/pipelines/p")).status_code == 204
                assert (await client.delete(f"{NS}/checks/made-by-api")).status_code == 204
                gone = await client.get(f"{NS}/checks/made-by-api")
            nursery.cancel_scope.cancel()
    await pipe.aclose()
    assert created.status_code == 201
    assert event["check"]["output"] == "hello from the API\n"
    assert [c["metadata"]["name"] for c in listed] == ["made-by-api"]
    assert bad.status_code == 400
    assert bad.json()["message"] == "spec.interval: expected integer, got string 'often'"
    assert dangling.status_code == 201  # resources arrive in any order, as in Sensu Go: a warning, not a refusal
    assert pipeline.status_code == 201
    assert in_use.status_code == 409
    assert in_use.json()["message"] == (
        "still in use: handler 'capture' is named by check 'made-by-api' (handlers), pipeline 'p' (workflows[0].handler)"
    )
    assert (kept.status_code, kept.json()["command"]) == (200, "echo hello from the API")
    assert gone.status_code == 404


async def test_pipeline_create_get_and_delete(tmp_path: Path) -> None:
    empty = write_config(tmp_path / "config", "---\n")
    bad = write_config(
        tmp_path / "bad", "type: Handler\napi_version: core/v2\nmetadata: {name: h}\nspec: {type: pipe}\n"
    )
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            backend = loopback_backend(tmp_path, empty)
            url = (await nursery.start(backend.run)).api_url

            async def cli(*args: str) -> tuple[int, str]:
                result = await trio.run_process(pipeline_command(*args, "--api-url", url, "--data", str(tmp_path / "data")),
                                                capture_stdout=True, capture_stderr=True, check=False)  # fmt: skip
                return result.returncode, result.stdout.decode() + result.stderr.decode()

            created = await cli("create", "-f", str(REPO / "pipeline" / "defaults" / "config"))
            listed = await cli("get", "checks")
            handlers = await cli("get", "handlers")
            deleted = await cli("delete", "checks", "load")
            deleted_again = await cli("delete", "checks", "load")
            after = await cli("get", "checks", "--format", "json")
            refused = await cli("create", "-f", str(bad))
            nursery.cancel_scope.cancel()
    code, output = created
    assert code == 0, output
    assert output.splitlines()[-1].endswith("resources saved")
    assert "saved" in output.splitlines()[0]
    header, _, *rows = listed[1].splitlines()
    assert header.split() == ["NAME", "COMMAND", "SCHEDULE", "TIMEOUT", "TTL", "SUBSCRIPTIONS", "HANDLERS", "SOURCE"]
    names = [row.split()[0] for row in rows]
    assert names == sorted(names)  # by name, as Sensu Go lists them
    (load,) = [row for row in rows if row.split()[0] == "load"]
    assert load.split()[:2] == ["load", "check_load"]
    assert "every 10s" in load
    assert handlers[1].splitlines()[2].split() == ["event-file", "pipe", "10", "RUN:", "event-file", "api"]
    assert deleted == (0, "checks 'load' deleted\n")
    assert deleted_again == (1, "pipeline: checks 'load' not found in namespace default\n")  # the backend's own words
    assert "load" not in [c["metadata"]["name"] for c in json.loads(after[1])]
    assert refused[0] == 1
    assert "Handler 'h': spec.command: required for a pipe handler" in refused[1]


async def test_proxy_entities_created_replaced_and_deleted_through_the_api(tmp_path: Path) -> None:
    backend = loopback_backend(tmp_path, write_config(tmp_path / "config", "---\n"))
    switch: dict[str, Any] = {"metadata": {"name": "switch1", "labels": {"site": "lyon"}}, "subscriptions": ["snmp"]}
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            addresses = await nursery.start(backend.run)
            async with httpx.AsyncClient(base_url=addresses.api_url, headers=admin_headers(backend)) as client:
                created = await client.post(f"{NS}/entities", json=switch)
                again = await client.post(f"{NS}/entities", json=switch)
                switch["metadata"]["labels"] = {"site": "paris"}
                replaced = await client.put(f"{NS}/entities/switch1", json=switch)
                stored = (await client.get(f"{NS}/entities/switch1")).json()
                mismatch = await client.put(f"{NS}/entities/switch2", json=switch)
                typo = await client.put(f"{NS}/entities/switch1", json={**switch, "subscriptons": []})
                deleted = await client.delete(f"{NS}/entities/switch1")
                gone = await client.get(f"{NS}/entities/switch1")
            nursery.cancel_scope.cancel()
    assert (created.status_code, again.status_code, replaced.status_code) == (201, 409, 201)
    assert "switch1 already exists" in again.json()["message"]
    assert (stored["entity_class"], stored["metadata"]["labels"], stored["subscriptions"]) == ("proxy", {"site": "paris"},
                                                                                              ["snmp"])  # fmt: skip
    assert (mismatch.status_code, mismatch.json()["message"]) == (
        400,
        "metadata.name: 'switch1' does not match 'switch2' in the URL",
    )
    # as Sensu Go's API does, a field it does not know is dropped; pipeline also says so and counts it
    assert (typo.status_code, typo.headers["Warning"]) == (201, '299 - "unknown fields ignored: subscriptons"')
    assert "subscriptons" not in typo.json()
    assert backend.metrics.registry.get_sample_value("pipeline_api_fields_ignored_total") == 1
    assert (deleted.status_code, gone.status_code) == (204, 404), deleted.text


ON_REQUEST = """
---
type: CheckConfig
api_version: core/v2
metadata: {name: backup}
spec:
  command: echo backup ran on request
  interval: 86400
  publish: false
  subscriptions: [db]
  handlers: [capture]
"""


async def test_a_check_executed_through_the_api_runs_now_on_the_agents_it_names(tmp_path: Path) -> None:
    pipe = EventPipe(tmp_path / "events.fifo")
    config = write_config(tmp_path / "config", capture_handler(pipe.path) + ON_REQUEST)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            backend, addresses = await backend_and_agent(nursery, tmp_path, config, "db1", ["db"])
            url = addresses.api_url
            async with httpx.AsyncClient(base_url=url, headers=admin_headers(backend)) as client:
                asked = await client.post(f"{NS}/checks/backup/execute", json={"check": "backup", "reason": "test"})
                event = await pipe.next_matching(lambda e: e["check"]["metadata"]["name"] == "backup")
                elsewhere = await client.post(f"{NS}/checks/backup/execute", json={"subscriptions": ["web"]})
                unknown = await client.post(f"{NS}/checks/nothing/execute")
                mismatch = await client.post(f"{NS}/checks/backup/execute", json={"check": "other"})
            cli = await trio.run_process(pipeline_command("check", "execute", "backup", "--subscriptions", "entity:db1",
                                                          "--api-url", url, "--data", str(tmp_path / "data")),
                                         capture_stdout=True)  # fmt: skip
            again = await pipe.next_matching(lambda e: e["check"]["metadata"]["name"] == "backup")
            nursery.cancel_scope.cancel()
    await pipe.aclose()
    assert (asked.status_code, asked.json()["agents"]) == (202, 1)
    assert event["entity"]["metadata"]["name"] == "db1"
    assert event["check"]["output"] == "backup ran on request\n"
    assert (elsewhere.status_code, elsewhere.json()["agents"]) == (202, 0)
    assert unknown.status_code == 404
    assert (mismatch.status_code, mismatch.json()["message"]) == (
        400,
        "check: 'other' does not match 'backup' in the URL",
    )
    assert cli.stdout.decode() == "check 'backup': 1 agent asked to run it now\n"
    assert again["check"]["output"] == "backup ran on request\n"

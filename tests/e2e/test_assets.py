"""Runtime assets end to end: a tarball built here, served on 127.0.0.1, run by a real agent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

from pipeline.agent.agent import Agent
from pipeline.agent.settings import AgentConfig
from tests.asset_support import asset_server, free_port_url, sha512, tarball
from tests.support import EventPipe, capture_handler, loopback_backend, write_config

pytestmark = pytest.mark.e2e


def resources(url: str, sha: str, checks: dict[str, str]) -> str:
    asset = f"""
        ---
        type: Asset
        api_version: core/v2
        metadata: {{name: my-asset}}
        spec:
          url: {url}
          sha512: {sha}
          filters: ["entity.system.os == 'linux'"]
          headers: {{X-Asset-Token: s3cret}}
        """
    return asset + "".join(
        f"""
        ---
        type: CheckConfig
        api_version: core/v2
        metadata: {{name: {name}}}
        spec:
          command: {command}
          interval: 1
          timeout: 10
          subscriptions: [web]
          handlers: [capture]
          runtime_assets: [my-asset]
        """
        for name, command in checks.items()
    )


async def run_agent(tmp_path: Path, yaml_text: str, count: int) -> tuple[list[dict[str, Any]], Agent]:
    """The first ``count`` check events of an agent with a data directory, against a real backend."""
    pipe = EventPipe(tmp_path / "events.fifo")
    backend = loopback_backend(tmp_path, write_config(tmp_path / "config", capture_handler(pipe.path) + yaml_text))
    events = []
    try:
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                addresses = await nursery.start(backend.run)
                config = AgentConfig(name="web1", backend_addrs=[addresses.transport], subscriptions=["web"],
                                     api_addr=None, data_dir=tmp_path / "agent")  # fmt: skip
                agent = Agent(config)
                await nursery.start(agent.run)
                while len(events) < count:
                    event = await pipe.next_event()
                    if event["check"]["metadata"]["name"] != "keepalive":
                        events.append(event)
                nursery.cancel_scope.cancel()
    finally:
        await pipe.aclose()
    return events, agent


async def test_a_check_runs_the_program_of_its_asset_fetched_once(tmp_path: Path) -> None:
    """A check with ``runtime_assets: [my-asset]`` runs ``mycheck`` from the asset's ``bin``."""
    data = tarball()
    with asset_server({"/my-asset.tar.gz": data}) as server:
        yaml_text = resources(f"{server.url}/my-asset.tar.gz", sha512(data), {"mine": "mycheck --fast"})
        events, agent = await run_agent(tmp_path, yaml_text, count=3)
    assert [e["check"]["output"] for e in events] == ["mycheck OK from the asset --fast\n"] * 3
    assert [e["check"]["status"] for e in events] == [0, 0, 0]
    assert server.count("/my-asset.tar.gz") == 1  # the cache serves the second and third runs
    assert server.requests[0][1]["X-Asset-Token"] == "s3cret"
    assert (tmp_path / "agent" / "assets" / sha512(data) / "bin" / "mycheck").exists()
    registry = agent.metrics.registry
    assert registry.get_sample_value("pipeline_agent_assets_installed_total", {"asset": "my-asset"}) == 1


async def test_a_bad_checksum_is_a_check_error_naming_the_asset(tmp_path: Path) -> None:
    data = tarball()
    with asset_server({"/my-asset.tar.gz": data}) as server:
        yaml_text = resources(f"{server.url}/my-asset.tar.gz", "ab" * 64, {"mine": "mycheck"})
        (event,), agent = await run_agent(tmp_path, yaml_text, count=1)
    assert event["check"]["status"] == 3
    assert event["check"]["output"] == (
        f'error getting assets for check: asset "my-asset": sha512 mismatch: expected abababababababab..., '
        f"got {sha512(data)[:16]}... ({server.url}/my-asset.tar.gz)"
    )
    failures = agent.metrics.registry.get_sample_value(
        "pipeline_agent_asset_failures_total", {"asset": "my-asset", "reason": "sha512"}
    )
    assert failures is not None
    assert failures >= 1


async def test_an_unreachable_asset_is_a_check_error_naming_it(tmp_path: Path) -> None:
    url = f"{free_port_url()}/my-asset.tar.gz"
    (event,), _ = await run_agent(tmp_path, resources(url, "ab" * 64, {"mine": "mycheck"}), count=1)
    assert event["check"]["status"] == 3
    output = event["check"]["output"]
    assert output.startswith(f'error getting assets for check: asset "my-asset": fetching {url}: ConnectError')
    assert "not found" not in output


async def test_a_name_of_no_asset_is_a_check_error_not_command_not_found(tmp_path: Path) -> None:
    yaml_text = resources("/nonexistent.tgz", "ab" * 64, {"mine": "mycheck"}).replace(
        "runtime_assets: [my-asset]", "runtime_assets: [typo-asset]"
    )
    (event,), _ = await run_agent(tmp_path, yaml_text, count=1)
    assert (event["check"]["status"], event["check"]["output"]) == (
        3,
        'error getting assets for check: asset "typo-asset": no Asset of that name',
    )

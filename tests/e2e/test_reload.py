"""Reloading the configuration directory through the API: a valid directory reaches connected
agents at once, a broken one changes nothing and says why, API changes stay on top."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from pipeline.backend.server import Backend
from pipeline.wire.messages import CHECKS, WELCOME, Hello
from pipeline.wire.stream import MessageStream
from tests.support import admin_headers, loopback_backend, wire_map, write_config

pytestmark = pytest.mark.e2e

NS = "/api/core/v2/namespaces/default"
RELOAD = "/api/pipeline/v1/reload"


def check_yaml(name: str, command: str = "true", subscription: str = "linux") -> str:
    return f"""
        ---
        type: CheckConfig
        api_version: core/v2
        metadata: {{name: {name}}}
        spec: {{command: "{command}", interval: 60, subscriptions: [{subscription}]}}
        """


async def agent_connection(transport: tuple[str, int]) -> tuple[MessageStream, list[str]]:
    """A raw agent subscribed to ``linux``, and the names of the checks it was sent first."""
    conn = MessageStream(await trio.open_tcp_stream(*transport), "backend")
    entity = {"entity_class": "agent", "metadata": {"name": "web1"}, "subscriptions": ["linux", "entity:web1"]}
    await conn.send(Hello("web1", "default", ("linux",), entity))
    assert wire_map(await conn.receive())["type"] == WELCOME
    return conn, await next_checks(conn)


async def next_checks(conn: MessageStream) -> list[str]:
    while True:
        message = wire_map(await conn.receive())
        assert message
        if message["type"] == CHECKS:
            return sorted(c["metadata"]["name"] for c in message["checks"])


def reloads(backend: Backend, result: str) -> Any:
    return backend.metrics.registry.get_sample_value("pipeline_config_reloads_total", {"result": result})


async def test_a_reload_applies_the_files_and_keeps_the_api_changes(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config", check_yaml("disk") + check_yaml("load"))
    backend = loopback_backend(tmp_path, config, config_dir=config)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            addresses = await nursery.start(backend.run)
            async with httpx.AsyncClient(base_url=addresses.api_url, headers=admin_headers(backend)) as client:
                conn, first = await agent_connection(addresses.transport)
                api_check = {"command": "true", "interval": 30, "subscriptions": ["linux"]}
                assert (await client.put(f"{NS}/checks/by-api", json=api_check)).status_code in (200, 201)
                assert await next_checks(conn) == ["by-api", "disk", "load"]
                # The files: "load" removed, "disk" changed, "memory" added, and "by-api" edited
                # in a file too, which the API's version hides.
                write_config(config, check_yaml("disk", "df") + check_yaml("memory") + check_yaml("by-api", "false"))
                answer = await client.post(RELOAD)
                after = await next_checks(conn)
                stored_api_check = (await client.get(f"{NS}/checks/by-api")).json()
                await conn.aclose()
            nursery.cancel_scope.cancel()
    assert first == ["disk", "load"]
    assert answer.status_code == 200
    assert answer.json() == {
        "result": "applied",
        "directory": str(config),
        "added": ["CheckConfig default/memory"],
        "changed": ["CheckConfig default/disk"],
        "removed": ["CheckConfig default/load"],
        "overridden_by_api": ["CheckConfig default/by-api"],
        "errors": [],
    }
    assert after == ["by-api", "disk", "memory"]
    assert stored_api_check["command"] == "true"
    assert reloads(backend, "applied") == 1


async def test_a_broken_file_leaves_the_running_configuration_and_names_the_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = write_config(tmp_path / "config", check_yaml("disk"))
    backend = loopback_backend(tmp_path, config, config_dir=config)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            addresses = await nursery.start(backend.run)
            async with httpx.AsyncClient(base_url=addresses.api_url, headers=admin_headers(backend)) as client:
                write_config(config, check_yaml("memory"), "more.yml")
                write_config(config, check_yaml("bad").replace("interval: 60", "interval: often"), "broken.yml")
                answer = await client.post(RELOAD)
                checks = [c["metadata"]["name"] for c in (await client.get(f"{NS}/checks")).json()]
                ingest = await client.post(RELOAD, headers={"Authorization": "Key nope"})
            nursery.cancel_scope.cancel()
    assert answer.status_code == 422
    body = answer.json()
    assert body["result"] == "failed"
    assert body["message"] == "configuration not reloaded: 1 error(s)"
    (error,) = body["errors"]
    assert error.startswith(
        f"{config / 'broken.yml'}: line 6: document 1: CheckConfig 'bad': spec.interval: expected integer"
    )
    assert checks == ["disk"]  # not even the valid "memory" of the other file
    assert ingest.status_code == 401
    assert reloads(backend, "failed") == 1
    errors = [r for r in caplog.records if r.getMessage() == "configuration error"]
    assert [(r.__dict__["file"], r.__dict__["document"]) for r in errors] == [(str(config / "broken.yml"), 1)]

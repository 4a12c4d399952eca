"""Namespaces as Sensu Go has them: ``default`` always, others created through the API or a
``Namespace`` document; nothing is written into a namespace that does not exist (resources,
entities, silences, events, agents), and a namespace goes only once nothing lives in it."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import sensu_go
import trio

from pipeline.wire.messages import ERROR, WELCOME, Hello
from pipeline.wire.stream import MessageStream
from tests.e2e.test_agent_rights import agent_entity
from tests.support import admin_headers, loopback_backend, served, wire_map, write_config

pytestmark = pytest.mark.e2e

NAMESPACES = "/api/core/v2/namespaces"
CHECK = {"metadata": {"name": "disk"}, "command": "true", "interval": 60, "subscriptions": ["linux"]}
EVENT = {"entity": {"metadata": {"name": "router1"}}, "check": {"metadata": {"name": "bgp"}, "status": 0}}


async def test_namespaces_created_listed_refused_when_missing_and_deleted_when_empty(tmp_path: Path) -> None:
    backend = loopback_backend(tmp_path, write_config(tmp_path / "config", "---\n"))
    async with served(backend) as up:
        client = up.client
        before = (await client.get(NAMESPACES)).json()
        created = await client.post(NAMESPACES, json={"name": "development"})  # the documentation's example
        taken = await client.post(NAMESPACES, json={"name": "development"})
        wrapped = {"type": "Namespace", "api_version": "core/v2", "metadata": {}, "spec": {"name": "staging"}}
        put = await client.put(f"{NAMESPACES}/staging", json=wrapped)
        listed = [n["name"] for n in (await client.get(NAMESPACES)).json()]
        selected = await client.get(NAMESPACES, params={"fieldSelector": "namespace.name == staging"})
        missing = {
            "get": await client.get(f"{NAMESPACES}/nope"),
            "check": await client.put(f"{NAMESPACES}/nope/checks/disk", json=CHECK),
            "entity": await client.post(f"{NAMESPACES}/nope/entities", json={"metadata": {"name": "e"}}),
            "silence": await client.post(f"{NAMESPACES}/nope/silenced", json={"check": "disk"}),
            "event": await client.post(f"{NAMESPACES}/nope/events", json=EVENT),
        }
        assert (await client.put(f"{NAMESPACES}/development/checks/disk", json=CHECK)).status_code == 201
        assert (await client.post(f"{NAMESPACES}/development/events", json=EVENT)).status_code == 201
        holding = await client.delete(f"{NAMESPACES}/development")
        assert (await client.delete(f"{NAMESPACES}/development/checks/disk")).status_code == 204
        still = await client.delete(f"{NAMESPACES}/development")
        assert (await client.delete(f"{NAMESPACES}/development/events/router1/bgp")).status_code == 204
        assert (await client.delete(f"{NAMESPACES}/development/entities/router1")).status_code == 204
        deleted = await client.delete(f"{NAMESPACES}/development")
        gone = await client.delete(f"{NAMESPACES}/development")
        default = await client.delete(f"{NAMESPACES}/default")
        after = [n["name"] for n in (await client.get(NAMESPACES)).json()]
    assert before == [{"name": "default"}]
    assert (created.status_code, taken.status_code, put.status_code) == (201, 409, 201)
    assert listed == ["default", "development", "staging"]
    assert selected.json() == [{"name": "staging"}]
    assert missing["get"].status_code == 404
    for what in ("check", "entity", "silence", "event"):
        assert (missing[what].status_code, missing[what].json()["message"]) == (
            404,
            "namespace 'nope' not found: create it first (PUT /api/core/v2/namespaces/nope)",
        ), what
    assert (holding.status_code, holding.json()["message"]) == (
        409,
        "namespace development is not empty: 1 entities, 1 events",
    )
    assert (still.status_code, still.json()["message"]) == (
        409,
        "namespace development is not empty: 1 entities, 1 events",
    )
    assert (deleted.status_code, gone.status_code) == (204, 404)
    assert (default.status_code, default.json()["message"]) == (409, "the default namespace always exists")
    assert after == ["default", "staging"]


async def test_the_check_in_a_namespace_keeps_it_from_being_deleted_by_name(tmp_path: Path) -> None:
    backend = loopback_backend(tmp_path, write_config(tmp_path / "config", "---\n"))
    async with served(backend) as up:
        client = up.client
        assert (await client.put(f"{NAMESPACES}/ops", json={"name": "ops"})).status_code == 201
        assert (await client.put(f"{NAMESPACES}/ops/checks/disk", json=CHECK)).status_code == 201
        refused = await client.delete(f"{NAMESPACES}/ops")
    assert (refused.status_code, refused.json()["message"]) == (409, "namespace ops is not empty: check 'disk'")


async def test_an_agent_of_a_namespace_that_does_not_exist_is_refused_until_it_does(tmp_path: Path) -> None:
    backend = loopback_backend(tmp_path, write_config(tmp_path / "config", "---\n"))

    async def hello(address: tuple[str, int]) -> dict[str, object]:
        conn = MessageStream(await trio.open_tcp_stream(*address), "backend")
        await conn.send(Hello("edge1", "prod", ("entity:edge1",), agent_entity("edge1", "prod")))
        answer = wire_map(await conn.receive())
        await conn.aclose()
        return answer

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            addresses = await nursery.start(backend.run)
            refused = await hello(addresses.transport)
            async with httpx.AsyncClient(base_url=addresses.api_url, headers=admin_headers(backend)) as client:
                assert (await client.put(f"{NAMESPACES}/prod", json={"name": "prod"})).status_code == 201
            welcomed = await hello(addresses.transport)
            nursery.cancel_scope.cancel()
    assert (refused["type"], refused["message"]) == (
        ERROR,
        "namespace 'prod' does not exist: declare it (a Namespace resource) on the backend",
    )
    assert welcomed["type"] == WELCOME


async def test_the_sensu_go_client_manages_namespaces(tmp_path: Path) -> None:
    backend = loopback_backend(tmp_path, write_config(tmp_path / "config", "---\n"))

    def drive(url: str, key: str) -> dict[str, list[str]]:
        client = sensu_go.Client(url, api_key=key)
        client.namespaces.create(spec={"name": "team-a"}, metadata={})
        created = sorted(n.name for n in client.namespaces.list())
        client.checks.create(spec={"command": "true", "interval": 60, "subscriptions": ["linux"]},
                             metadata={"name": "disk", "namespace": "team-a"})  # fmt: skip
        in_it = [c.metadata["name"] for c in client.checks.list(namespace="team-a")]
        client.checks.delete("disk", namespace="team-a")
        client.namespaces.delete("team-a")
        return {"created": created, "in it": in_it, "left": sorted(n.name for n in client.namespaces.list())}

    async with served(backend, seconds=60) as up:
        seen = await trio.to_thread.run_sync(drive, up.addresses.api_url, up.api_key)
    assert seen == {"created": ["default", "team-a"], "in it": ["disk"], "left": ["default"]}

"""Agents write only what they may: their own namespace, their own entity or proxies, never
another agent's entity. A real backend, raw transport clients."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import msgpack
import pytest
import trio

from pipeline.backend.server import Backend
from pipeline.wire.limits import MAX_EVENT_BYTES
from pipeline.wire.messages import ACK, CHECKS, WELCOME, Events, Hello
from pipeline.wire.stream import MessageStream
from tests.support import admin_headers, loopback_backend, wire_map, write_config

pytestmark = pytest.mark.e2e


def agent_entity(name: str, namespace: str = "default") -> dict[str, Any]:
    return {"entity_class": "agent", "metadata": {"name": name, "namespace": namespace},
            "subscriptions": [f"entity:{name}"]}  # fmt: skip


def event(check: str, entity: dict[str, Any], **check_fields: Any) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "entity": entity,
            "check": {"metadata": {"name": check}, "status": 0, "output": check, "interval": 60, **check_fields}}  # fmt: skip


async def connect(backend_addr: tuple[str, int], name: str, namespace: str = "default") -> MessageStream:
    conn = MessageStream(await trio.open_tcp_stream(*backend_addr), "backend")
    await conn.send(Hello(name, namespace, (f"entity:{name}",), agent_entity(name, namespace)))
    assert wire_map(await conn.receive())["type"] == WELCOME
    assert wire_map(await conn.receive())["type"] == CHECKS
    return conn


async def answers(conn: MessageStream, count: int) -> tuple[list[str], dict[str, dict[str, str]]]:
    """Acked ids and rejections by id, once ``count`` events are answered."""
    acked: list[str] = []
    rejected: dict[str, dict[str, str]] = {}
    while len(acked) + len(rejected) < count:
        message = wire_map(await conn.receive())
        assert message
        if message["type"] == ACK:
            acked += message["ids"]
            rejected.update({item["id"]: item for item in message["rejected"]})
    return acked, rejected


async def stored_checks(backend: Backend, client: httpx.AsyncClient, namespace: str = "default") -> set[str]:
    response = await client.get(f"/api/core/v2/namespaces/{namespace}/events", headers=admin_headers(backend))
    return {f"{e['entity']['metadata']['name']}/{e['check']['metadata']['name']}" for e in response.json()}


async def test_an_agent_writes_its_own_entity_and_proxies_and_nothing_else(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    backend = loopback_backend(tmp_path, write_config(tmp_path / "config", "---\n"))
    web1, web2 = agent_entity("web1"), agent_entity("web2")
    allowed = [
        event("own", web1),
        event("by-check", web1, proxy_entity_name="router1"),
        event("by-class", {"entity_class": "proxy", "metadata": {"name": "switch1", "namespace": "default"}}),
    ]
    refused = {
        "other_agent": event("spoofed", web2),
        "other_agent_by_check": event("spoofed-proxy", web1, proxy_entity_name="web2"),
        "other_agent_by_class": event("spoofed-class", {"entity_class": "proxy", "metadata": {"name": "web2"}}),
        "other_agent_by_api": event("api-agent", web1, proxy_entity_name="db1"),
        "namespace": event("elsewhere", agent_entity("web1", "other")),
        "check_namespace": event("elsewhere2", web1),
        "not_proxy": event("not-proxy", {"entity_class": "service", "metadata": {"name": "web3"}}),
    }
    refused["check_namespace"]["check"]["metadata"]["namespace"] = "other"
    behind = event("behind", web1)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            addresses = await nursery.start(backend.run)
            async with httpx.AsyncClient(base_url=addresses.api_url) as client:
                api_entity = {"entity_class": "agent", "metadata": {"name": "db1"}}
                response = await client.put("/api/core/v2/namespaces/default/entities/db1", json=api_entity,
                                            headers=admin_headers(backend))  # fmt: skip
                assert response.status_code == 201
                other = await connect(addresses.transport, "web2")  # registers web2 as an agent
                conn = await connect(addresses.transport, "web1")
                # One frame: the refused events sit in the middle, good ones before and behind them.
                await conn.send(Events((*allowed, *refused.values(), behind)))
                acked, rejections = await answers(conn, len(allowed) + len(refused) + 1)
                stored = await stored_checks(backend, client)
                stored_other = await stored_checks(backend, client, "other")
                await conn.aclose()
                await other.aclose()
            nursery.cancel_scope.cancel()
    assert sorted(acked) == sorted(e["id"] for e in [*allowed, behind])
    reasons = {name: rejections[e["id"]]["reason"] for name, e in refused.items()}
    assert reasons == {"other_agent": "other_agent", "other_agent_by_check": "other_agent",
                       "other_agent_by_class": "other_agent", "other_agent_by_api": "other_agent",
                       "namespace": "namespace", "check_namespace": "namespace", "not_proxy": "not_proxy"}  # fmt: skip
    assert rejections[refused["other_agent_by_check"]["id"]]["error"] == (
        "check.proxy_entity_name: 'web2' is the entity of another agent"
    )
    assert rejections[refused["namespace"]["id"]]["error"] == (
        "entity.metadata.namespace: 'other' is not the agent's namespace 'default'"
    )
    assert stored >= {"web1/own", "router1/by-check", "switch1/by-class", "web1/behind"}
    assert not {name.split("/")[1] for name in stored} & {e["check"]["metadata"]["name"] for e in refused.values()}
    assert stored_other == set()
    registry = backend.metrics.registry
    refused_total = "pipeline_transport_events_refused_total"
    assert registry.get_sample_value(refused_total, {"reason": "other_agent"}) == 4
    assert registry.get_sample_value(refused_total, {"reason": "namespace"}) == 2
    assert registry.get_sample_value(refused_total, {"reason": "not_proxy"}) == 1
    # one line per agent and reason, not one per event
    lines = [r for r in caplog.records if r.getMessage().startswith("event refused")]
    assert sorted(r.__dict__["reason"] for r in lines) == ["namespace", "not_proxy", "other_agent"]


async def test_an_agent_of_another_namespace_writes_there_only(tmp_path: Path) -> None:
    prod = "type: Namespace\napi_version: core/v2\nspec: {name: prod}\n"
    backend = loopback_backend(tmp_path, write_config(tmp_path / "config", prod))
    own = event("own", agent_entity("edge1", "prod"))
    nameless = event("nameless", {"entity_class": "agent", "metadata": {"name": "edge1"}})
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            addresses = await nursery.start(backend.run)
            conn = await connect(addresses.transport, "edge1", "prod")
            await conn.send(Events((nameless, own)))
            acked, rejections = await answers(conn, 2)
            await conn.aclose()
            nursery.cancel_scope.cancel()
    assert acked == [own["id"]]
    # without a namespace the event would land in "default"
    assert rejections[nameless["id"]] == {
        "id": nameless["id"],
        "error": "entity.metadata.namespace: missing (the agent's namespace is 'prod')",
        "reason": "namespace",
    }


async def test_the_backend_holds_an_agent_to_the_maximum_event_size(tmp_path: Path) -> None:
    backend = loopback_backend(tmp_path, write_config(tmp_path / "config", "---\n"))
    web1 = agent_entity("web1")
    large = event("large", web1, output="x" * MAX_EVENT_BYTES)  # an agent that skipped its own limit
    behind = event("behind", web1)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            addresses = await nursery.start(backend.run)
            conn = await connect(addresses.transport, "web1")
            await conn.send(Events((msgpack.packb(large), msgpack.packb(behind))))
            acked, rejected = await answers(conn, 2)
            async with httpx.AsyncClient(base_url=addresses.api_url) as client:
                stored = await stored_checks(backend, client)
            await conn.aclose()
            nursery.cancel_scope.cancel()
    assert acked == [behind["id"]]
    assert f"exceeds the maximum event size of {MAX_EVENT_BYTES} bytes" in rejected[large["id"]]["error"]
    assert stored == {"web1/behind"}


async def test_an_agent_entity_deregistered_or_saved_as_a_proxy_is_a_proxy_again(tmp_path: Path) -> None:
    """The names other agents may not write about follow the entities: deleting an agent's entity
    through the API, or saving it as a proxy, frees its name for proxy events."""
    backend = loopback_backend(tmp_path, write_config(tmp_path / "config", "---\n"))
    web1 = agent_entity("web1")
    entities = "/api/core/v2/namespaces/default/entities"
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            addresses = await nursery.start(backend.run)
            async with httpx.AsyncClient(base_url=addresses.api_url, headers=admin_headers(backend)) as client:
                for name in ("db1", "db2"):
                    agent = {"entity_class": "agent", "metadata": {"name": name}}
                    assert (await client.put(f"{entities}/{name}", json=agent)).status_code == 201
                conn = await connect(addresses.transport, "web1")
                before = [
                    event("before-1", web1, proxy_entity_name="db1"),
                    event("before-2", web1, proxy_entity_name="db2"),
                ]
                await conn.send(Events(tuple(before)))
                _, refused = await answers(conn, 2)
                assert (await client.delete(f"{entities}/db1")).status_code == 204
                proxy = {"entity_class": "proxy", "metadata": {"name": "db2"}}
                assert (await client.put(f"{entities}/db2", json=proxy)).status_code == 201
                after = [
                    event("after-1", web1, proxy_entity_name="db1"),
                    event("after-2", web1, proxy_entity_name="db2"),
                ]
                await conn.send(Events(tuple(after)))
                acked, _ = await answers(conn, 2)
                await conn.aclose()
            nursery.cancel_scope.cancel()
    assert sorted(refused) == sorted(e["id"] for e in before)
    assert sorted(acked) == sorted(e["id"] for e in after)

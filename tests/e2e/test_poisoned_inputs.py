"""Numbers out of range, poisoned stored resources and hostile frames are refused where they
enter, naming the field; the backend keeps serving (issue 13's reproductions)."""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import struct
from pathlib import Path
from typing import Any

import httpx
import msgpack
import pytest
import trio

from pipeline.agent.agent import Agent
from pipeline.agent.settings import AgentConfig, agent_entity
from pipeline.model import Check, Entity, Event, ObjectMeta, new_event_id
from pipeline.model.codec import encode
from pipeline.wire.messages import Events, Hello, encode_message
from pipeline.wire.protocol import pack_frame
from pipeline.wire.stream import MessageStream
from tests.support import admin_headers, loopback_backend, wire_map, write_config

pytestmark = pytest.mark.e2e

NS = "/api/core/v2/namespaces/default"
CHECK = {"metadata": {"name": "ok"}, "command": "true", "interval": 1, "subscriptions": ["web"], "publish": True}
RESOURCES = "type: CheckConfig\napi_version: core/v2\nmetadata: {name: from-file}\nspec: {command: 'true', interval: 60, subscriptions: [web]}\n"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("interval", 10**30, "spec.interval: 1000000000000000000000000000000 is out of range (0..4294967295)"),
        ("timeout", 2**64, "spec.timeout: 18446744073709551616 is out of range (0..4294967295)"),
        ("ttl", 2**70, "spec.ttl: 1180591620717411303424 is out of range "
                       "(-9223372036854775808..9223372036854775807)"),
        ("high_flap_threshold", 2**64, "spec.high_flap_threshold: 18446744073709551616 is out of range "
                                       "(0..4294967295)"),
        ("subdue", {"days": 2**64}, "spec.subdue.days: 18446744073709551616 is out of range"),
    ],
)  # fmt: skip
async def test_numbers_out_of_range_are_400_and_an_agent_connecting_after_them_is_served(
    tmp_path: Path, field: str, value: Any, message: str
) -> None:
    config = write_config(tmp_path / "config", "")
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            backend = loopback_backend(tmp_path, config)
            addresses = await nursery.start(backend.run)
            async with httpx.AsyncClient(base_url=addresses.api_url, headers=admin_headers(backend)) as client:
                refused = await client.put(
                    f"{NS}/checks/bad", json={**CHECK, "metadata": {"name": "bad"}, field: value}
                )
                event = {"entity": {"metadata": {"name": "x"}, "entity_class": "proxy"},
                         "check": {"metadata": {"name": "c"}, "output": "o", "status": 2**63}}  # fmt: skip
                refused_event = await client.post(f"{NS}/events", json=event)
                accepted = await client.put(f"{NS}/checks/ok", json=CHECK)
                agent = Agent(AgentConfig(name="web1", backend_addrs=[addresses.transport], subscriptions=["web"],
                                          api_addr=None))  # fmt: skip
                nursery.start_soon(agent.run)
                await agent.connected.wait()
                listed = await client.get(f"{NS}/checks")
            nursery.cancel_scope.cancel()
    assert refused.status_code == 400
    assert refused.json()["message"].startswith(message)
    assert refused_event.status_code == 400
    assert refused_event.json()["message"] == "check.status: 9223372036854775808 is out of range (0..4294967295)"
    assert accepted.status_code == 201
    assert [c["metadata"]["name"] for c in listed.json()] == ["ok"]


async def test_a_stored_resource_that_no_longer_loads_is_skipped_named_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = write_config(tmp_path / "config", RESOURCES)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:  # a first start creates the database
            backend = loopback_backend(tmp_path, config)
            addresses = await nursery.start(backend.run)
            async with httpx.AsyncClient(base_url=addresses.api_url, headers=admin_headers(backend)) as client:
                assert (await client.put(f"{NS}/checks/ok", json=CHECK)).status_code == 201
            nursery.cancel_scope.cancel()
    poisoned = {"type": "CheckConfig", "api_version": "core/v2", "metadata": {"name": "poisoned", "namespace": "default"},
                "spec": {**{k: v for k, v in CHECK.items() if k != "metadata"}, "interval": 10**30}}  # fmt: skip
    with sqlite3.connect(tmp_path / "data" / "events.db") as db:  # as an older version could have stored it
        db.execute("INSERT INTO resources VALUES (?, ?, ?, ?)",
                   ("CheckConfig", "default", "poisoned", json.dumps(poisoned).encode()))  # fmt: skip
    db.close()
    caplog.set_level(logging.ERROR)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            backend = loopback_backend(tmp_path, config)
            addresses = await nursery.start(backend.run)
            async with httpx.AsyncClient(base_url=addresses.api_url, headers=admin_headers(backend)) as client:
                listed = await client.get(f"{NS}/checks")
                metrics = (await client.get("/metrics")).text
            nursery.cancel_scope.cancel()
    assert sorted(c["metadata"]["name"] for c in listed.json()) == ["from-file", "ok"]
    assert 'pipeline_resources_skipped_total{kind="CheckConfig"} 1.0' in metrics
    (record,) = [r for r in caplog.records if r.getMessage() == "stored resource no longer loads; skipped"]
    fields = record.__dict__
    assert (fields["kind"], fields["namespace"], fields["resource"], fields["field"]) == (
        "CheckConfig",
        "default",
        "poisoned",
        "spec.interval",
    )
    assert fields["error"] == "1000000000000000000000000000000 is out of range (0..4294967295)"


def raw_hello(**fields: Any) -> dict[str, Any]:
    entity = encode(agent_entity(AgentConfig(name="raw", backend_addrs=[])))
    return {**encode_message(Hello("raw", "default", (), entity)), **fields}


async def replies_until_closed(conn: MessageStream) -> list[dict[str, Any]]:
    replies = []
    while (message := await conn.receive()) is not None:
        replies.append(encode_message(message))
    return replies


async def test_hostile_hellos_and_frames_close_that_connection_and_the_backend_serves_on(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config", "")
    deep = b"\x82\xa4type\xa4ping\xa1x" + b"\x91" * 500 + b"\xc0"
    bad_event = Event(entity=Entity(metadata=ObjectMeta(name="raw")), id=new_event_id(),
                      check=Check(metadata=ObjectMeta(name="c"), output="o"))  # fmt: skip
    packed = bad_event.to_dict()
    packed["check"]["status"] = 2**63  # as a hostile agent would send it
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            backend = loopback_backend(tmp_path, config)
            addresses = await nursery.start(backend.run)
            refusals = []
            for fields in ({"heartbeat_timeout": math.nan}, {"heartbeat_timeout": math.inf},
                           {"heartbeat_timeout": 2**64 - 1}, {"version": True}):  # fmt: skip
                conn = MessageStream(await trio.open_tcp_stream(*addresses.transport), "backend")
                await conn.stream.send_all(pack_frame(raw_hello(**fields)))
                refusals.append(await replies_until_closed(conn))
                await conn.aclose()
            conn = MessageStream(await trio.open_tcp_stream(*addresses.transport), "backend")
            await conn.stream.send_all(struct.pack(">I", len(deep)) + deep)  # as the first frame
            assert await replies_until_closed(conn) == []
            await conn.aclose()
            conn = MessageStream(await trio.open_tcp_stream(*addresses.transport), "backend")
            await conn.stream.send_all(pack_frame(raw_hello()))
            assert wire_map(await conn.receive())["type"] == "welcome"
            assert wire_map(await conn.receive())["type"] == "checks"
            await conn.send(Events((msgpack.packb(packed),)))
            ack = wire_map(await conn.receive())
            await conn.aclose()
            agent = Agent(AgentConfig(name="web1", backend_addrs=[addresses.transport], api_addr=None))
            nursery.start_soon(agent.run)
            await agent.connected.wait()  # the backend is still serving
            nursery.cancel_scope.cancel()
    assert [r[0]["message"] for r in refusals] == [
        "hello.heartbeat_timeout: nan is out of range (0..86400 seconds)",
        "hello.heartbeat_timeout: inf is out of range (0..86400 seconds)",
        "hello.heartbeat_timeout: 1.8446744073709552e+19 is out of range (0..86400 seconds)",
        "hello.version: expected an integer, got bool",
    ]
    assert ack == {"type": "ack", "ids": [], "rejected": [
        {"id": bad_event.id, "error": "check.status: 9223372036854775808 is out of range (0..4294967295)"}]}  # fmt: skip
    errors = backend.metrics.registry.get_sample_value("pipeline_transport_errors_total", {"reason": "protocol"})
    assert errors == 5

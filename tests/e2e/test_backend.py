"""The backend in-process on real loopback sockets: events API, transport, state, handlers.

Sequences of statuses are POSTed and the stored history, occurrences, watermark, state and
total_state_change compared with the values Sensu Go gives for the same sequence.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from pipeline.backend.server import Backend, BackendAddresses
from pipeline.wire.messages import CHECKS, WELCOME, Events, Hello
from pipeline.wire.stream import MessageStream
from tests.support import EventPipe, admin_headers, capture_handler, loopback_backend, wire_map, write_config

pytestmark = pytest.mark.e2e

EVENTS = "/api/core/v2/namespaces/default/events"


@dataclass
class RunningBackend:
    backend: Backend
    addresses: BackendAddresses
    client: httpx.AsyncClient
    pipe: EventPipe
    data_dir: Path


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[RunningBackend]:
    pipe = EventPipe(tmp_path / "events.fifo")
    config = write_config(
        tmp_path / "config",
        capture_handler(pipe.path)
        + """
        ---
        type: Handler
        api_version: core/v2
        metadata: {name: broken}
        spec:
          type: pipe
          command: exit 7
        """,
    )
    backend = loopback_backend(tmp_path, config)
    async with trio.open_nursery() as nursery:
        addresses = await nursery.start(backend.run)
        async with httpx.AsyncClient(base_url=addresses.api_url, timeout=10, headers=admin_headers(backend)) as client:
            yield RunningBackend(backend, addresses, client, pipe, tmp_path / "data")
        nursery.cancel_scope.cancel()
    await pipe.aclose()


def check_event(
    status: int, *, check: str = "seq", executed: int = 1_700_000_000, **check_fields: Any
) -> dict[str, Any]:
    return {
        "entity": {"entity_class": "proxy", "metadata": {"name": "router1", "namespace": "default"}},
        "check": {"metadata": {"name": check}, "status": status, "output": f"status {status}", "interval": 60,
                  "executed": executed, **check_fields},
    }  # fmt: skip


# Sensu Go's own sequence (integration test and docs table): (status, occurrences, watermark).
SENSU_OCCURRENCES = [(0, 1, 1), (0, 2, 2), (1, 1, 1), (1, 2, 2), (1, 3, 3), (2, 1, 3), (2, 2, 3), (2, 3, 3),
                     (2, 4, 4), (0, 1, 4), (2, 1, 1)]  # fmt: skip


async def test_posted_statuses_give_sensu_occurrences_and_watermarks(running: RunningBackend) -> None:
    for i, (status, occurrences, watermark) in enumerate(SENSU_OCCURRENCES):
        response = await running.client.post(EVENTS, json=check_event(status, executed=1_700_000_000 + i))
        assert response.status_code == 201, response.text
        stored = (await running.client.get(f"{EVENTS}/router1/seq")).json()["check"]
        assert (stored["status"], stored["occurrences"], stored["occurrences_watermark"]) == (
            status,
            occurrences,
            watermark,
        ), f"after result {i + 1}"
        assert stored["state"] == ("passing" if status == 0 else "failing")
    assert [h["status"] for h in stored["history"]] == [s for s, _, _ in SENSU_OCCURRENCES]
    assert stored["last_ok"] == 1_700_000_009


async def test_flapping_total_state_change_and_transitions(running: RunningBackend) -> None:
    statuses = [0, 0, 0, 1, 2, 3, 3, 3, 3, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 2, 2]
    for i, status in enumerate(statuses):
        body = check_event(status, check="flappy", executed=1_700_000_000 + i,
                           low_flap_threshold=10, high_flap_threshold=30)  # fmt: skip
        assert (await running.client.put(f"{EVENTS}/router1/flappy", json=body)).status_code == 201
    stored = (await running.client.get(f"{EVENTS}/router1/flappy")).json()["check"]
    assert stored["total_state_change"] == 34  # Sensu Go's upstream vector
    assert stored["state"] == "flapping"
    assert stored["is_flapping_start"] is True
    assert len(stored["history"]) == 21
    # Two more results: the oldest drops out of the window of 21.
    for i, status in enumerate([2, 2]):
        body = check_event(status, check="flappy", executed=1_700_000_100 + i,
                           low_flap_threshold=10, high_flap_threshold=30)  # fmt: skip
        await running.client.put(f"{EVENTS}/router1/flappy", json=body)
    stored = (await running.client.get(f"{EVENTS}/router1/flappy")).json()["check"]
    assert len(stored["history"]) == 21
    assert "is_flapping_start" not in stored


async def test_handlers_receive_the_event_as_sensu_json_despite_failing_ones(running: RunningBackend) -> None:
    body = check_event(2, check="db", handlers=["broken", "capture", "missing"])
    with trio.fail_after(20):
        assert (await running.client.post(EVENTS, json=body)).status_code == 201
        received = await running.pipe.next_event()
    assert received["entity"]["metadata"]["name"] == "router1"
    assert received["entity"]["entity_class"] == "proxy"
    assert received["check"]["status"] == 2
    assert received["check"]["output"] == "status 2"
    assert received["check"]["history"] == [{"status": 2, "executed": 1_700_000_000}]
    assert received["check"]["occurrences"] == 1
    assert received["check"]["state"] == "failing"
    assert received["check"]["handlers"] == ["broken", "capture", "missing"]
    registry = running.backend.metrics.registry
    assert (
        registry.get_sample_value("pipeline_handler_failures_total", {"handler": "missing", "reason": "missing"}) == 1
    )


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"{", 400, "malformed JSON at line 1 column 2"),
        (b'{"check": {"metadata": {"name": "c"}}}', 400, "entity: event must contain an entity"),
        (b'{"entity": {"metadata": {"name": "e"}}, "check": {"status": "bad"}}', 400, "check.status: expected integer"),
    ],
)  # fmt: skip
async def test_bad_submissions_are_400_naming_the_field(
    running: RunningBackend, body: bytes, status: int, message: str
) -> None:
    response = await running.client.post(EVENTS, content=body)
    assert response.status_code == status
    assert response.json()["message"].startswith(message)
    assert (await running.client.get("/health")).status_code == 200


async def test_unknown_fields_are_ignored_as_sensu_go_ignores_them(running: RunningBackend) -> None:
    body = check_event(1, check="newer")
    body["sent_by"] = "a newer client"
    body["check"]["history"] = [{"status": 0, "executed": 1_699_999_990, "note": "x"}]
    body["entity"]["metadata"]["uid"] = "123"
    answer = await running.client.post(EVENTS, json=body)
    assert answer.status_code == 201
    # said to the client as a write of a resource says it
    assert (
        answer.headers["Warning"]
        == '299 - "unknown fields ignored: entity.metadata.uid, check.history[0].note, sent_by"'
    )
    stored = (await running.client.get(f"{EVENTS}/router1/newer")).json()
    assert "sent_by" not in stored
    assert "uid" not in stored["entity"]["metadata"]
    assert stored["check"]["status"] == 1
    registry = running.backend.metrics.registry
    assert registry.get_sample_value("pipeline_api_fields_ignored_total") == 3


async def test_events_of_every_namespace_are_listed_under_api_core_v2_events(running: RunningBackend) -> None:
    ops = check_event(1, check="disk")
    ops["entity"]["metadata"]["namespace"] = "ops"
    assert (await running.client.put("/api/core/v2/namespaces/ops", json={"name": "ops"})).status_code == 201
    assert (await running.client.post(EVENTS, json=check_event(0, check="cpu"))).status_code == 201
    assert (await running.client.post("/api/core/v2/namespaces/ops/events", json=ops)).status_code == 201
    everywhere = (await running.client.get("/api/core/v2/events")).json()
    in_default = (await running.client.get(EVENTS)).json()
    assert [(e["metadata"]["namespace"], e["check"]["metadata"]["name"]) for e in everywhere] == [
        ("default", "cpu"), ("ops", "disk")]  # fmt: skip
    assert [e["check"]["metadata"]["name"] for e in in_default] == ["cpu"]


async def test_unknown_event_is_404_and_path_names_must_match(running: RunningBackend) -> None:
    assert (await running.client.get(f"{EVENTS}/nobody/nothing")).status_code == 404
    response = await running.client.put(f"{EVENTS}/router1/other", json=check_event(0, check="seq"))
    assert response.status_code == 400
    assert "check.metadata.name" in response.json()["message"]
    assert (await running.client.get(f"{EVENTS}/router1")).json() == []


async def test_transport_acks_after_store_and_a_replay_changes_nothing(running: RunningBackend) -> None:
    stream = MessageStream(await trio.open_tcp_stream(*running.addresses.transport), "backend")
    entity = {"entity_class": "agent", "metadata": {"name": "agent1", "namespace": "default"},
              "subscriptions": ["entity:agent1"]}  # fmt: skip
    await stream.send(Hello("agent1", "default", ("entity:agent1",), entity))
    assert wire_map(await stream.receive())["type"] == WELCOME
    assert wire_map(await stream.receive())["type"] == CHECKS
    event = check_event(1, check="replayed")
    event["entity"] = entity
    event["id"] = str(uuid.uuid4())
    invalid = {"id": str(uuid.uuid4()), "check": {"metadata": {"name": "x"}}}
    with trio.fail_after(10):
        for _ in range(2):
            await stream.send(Events((event, invalid)))
            acked: list[str] = []
            rejected: list[dict[str, str]] = []
            while len(acked) + len(rejected) < 2:
                message = wire_map(await stream.receive())
                assert message
                acked += message["ids"]
                rejected += message["rejected"]
            assert acked == [event["id"]]
            assert rejected == [{"id": invalid["id"], "error": "entity: event must contain an entity"}]
    stored = (await running.client.get(f"{EVENTS}/agent1/replayed")).json()["check"]
    assert len(stored["history"]) == 1
    assert stored["occurrences"] == 1
    registry = running.backend.metrics.registry
    assert registry.get_sample_value("pipeline_events_duplicate_total") == 1
    await stream.aclose()


async def test_malformed_frame_closes_only_that_connection(running: RunningBackend) -> None:
    bad = await trio.open_tcp_stream(*running.addresses.transport)
    await bad.send_all(b"\x00\x00\x00\x02\xc1\xc1")
    with trio.fail_after(10):
        assert await bad.receive_some(100) == b""  # the backend closed it
    await bad.aclose()
    registry = running.backend.metrics.registry
    assert registry.get_sample_value("pipeline_transport_errors_total", {"reason": "protocol"}) == 1
    assert (await running.client.post(EVENTS, json=check_event(0, check="after"))).status_code == 201


async def test_a_check_with_proxy_entity_name_is_about_that_entity(running: RunningBackend) -> None:
    body = check_event(2, check="ping", proxy_entity_name="switch1")
    assert (await running.client.post(EVENTS, json=body)).status_code == 201
    stored = (await running.client.get(f"{EVENTS}/switch1/ping")).json()
    assert stored["entity"]["metadata"] == {"name": "switch1", "namespace": "default"}
    assert stored["entity"]["entity_class"] == "proxy"
    assert stored["entity"]["subscriptions"] == ["entity:switch1"]
    assert (await running.client.get(f"{EVENTS}/router1/ping")).status_code == 404


async def test_an_event_can_be_deleted_and_its_check_starts_afresh(running: RunningBackend) -> None:
    for status in (2, 2):
        assert (await running.client.post(EVENTS, json=check_event(status, check="gone"))).status_code == 201
    assert (await running.client.delete(f"{EVENTS}/router1/gone")).status_code == 204
    assert (await running.client.get(f"{EVENTS}/router1/gone")).status_code == 404
    assert (await running.client.delete(f"{EVENTS}/router1/gone")).status_code == 404
    assert (await running.client.post(EVENTS, json=check_event(2, check="gone"))).status_code == 201
    again = (await running.client.get(f"{EVENTS}/router1/gone")).json()
    assert (again["check"]["occurrences"], len(again["check"]["history"])) == (1, 1)


async def test_a_body_over_the_size_limit_is_413_and_takes_nothing(running: RunningBackend) -> None:
    huge = check_event(2, check="huge", output="x" * (1024 * 1024 + 1))
    response = await running.client.post(EVENTS, json=huge)
    assert response.status_code == 413
    assert response.json()["message"].endswith("exceeds 1048576")
    assert (await running.client.get(f"{EVENTS}/router1/huge")).status_code == 404

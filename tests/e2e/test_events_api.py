"""Events through Sensu Go's events API are always new results, and the entities they name are
registered as Sensu Go registers them: ``sensuctl event resolve`` (the event sent back with its
id) reaches the check's handlers as a resolution; an event for an unknown entity, a check's
``proxy_entity_name`` and a pushed change naming a host each register a proxy entity that the
entities API lists with its ``last_seen``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import sensu_go
import trio

from tests.support import EventPipe, admin_headers, capture_handler, loopback_backend, served, write_config

pytestmark = pytest.mark.e2e

NS = "/api/core/v2/namespaces/default"
TOKEN = "5d1e-ingest"


def config(tmp_path: Path, pipe: Path) -> Path:
    handler = capture_handler(pipe).replace("timeout: 10", "timeout: 10\n          filters: [is_incident]")
    return write_config(tmp_path / "config", handler)


def sensuctl_resolve(event: dict[str, Any]) -> dict[str, Any]:
    """What ``sensuctl event resolve`` sends (its client's ResolveEvent): the event it read, id
    and all, with status 0, its output and the time now."""
    event["check"]["status"] = 0
    event["check"]["output"] = "Resolved manually by sensuctl"
    event["timestamp"] = int(time.time())
    return event


async def test_sensuctl_resolve_is_a_new_result_that_reaches_the_handlers(tmp_path: Path) -> None:
    pipe = EventPipe(tmp_path / "events.pipe")
    backend = loopback_backend(tmp_path, config(tmp_path, pipe.path))
    failing = {"check": {"metadata": {"name": "bgp"}, "status": 2, "output": "peer down", "handlers": ["capture"]}}
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            url = (await nursery.start(backend.run)).api_url
            async with httpx.AsyncClient(base_url=url, headers=admin_headers(backend)) as client:
                put = await client.put(f"{NS}/events/router1/bgp", json=failing)  # no entity: the path's
                incident = await pipe.next_event()
                stored = (await client.get(f"{NS}/events/router1/bgp")).json()
                resolve = await client.put(f"{NS}/events/router1/bgp", json=sensuctl_resolve(dict(stored)))
                resolution = await pipe.next_event()
                after = (await client.get(f"{NS}/events/router1/bgp")).json()
                entity = await client.get(f"{NS}/entities/router1")
                listed = (await client.get(f"{NS}/entities")).json()
            nursery.cancel_scope.cancel()
    await pipe.aclose()
    assert (put.status_code, resolve.status_code) == (201, 201), (put.text, resolve.text)
    assert incident["check"]["status"] == 2
    assert incident["entity"]["entity_class"] == "proxy"
    assert (resolution["check"]["status"], resolution["check"]["output"]) == (0, "Resolved manually by sensuctl")
    assert [h["status"] for h in resolution["check"]["history"]] == [2, 0]  # a resolution: is_incident let it by
    assert resolution["id"] != incident["id"]  # the used id is replaced: handlers de-duplicate by id
    assert (after["check"]["status"], after["id"]) == (0, resolution["id"])
    assert entity.status_code == 200, entity.text
    assert entity.json()["entity_class"] == "proxy"
    assert entity.json()["subscriptions"] == ["entity:router1"]
    assert abs(entity.json()["last_seen"] - time.time()) < 30
    assert [e["metadata"]["name"] for e in listed] == ["router1"]


async def test_proxies_from_api_events_checks_and_pushes_are_listed(tmp_path: Path) -> None:
    """A wrapped event for an unknown entity, a check naming ``proxy_entity_name``, a Sematext
    event and a StackState intake naming hosts: each entity is registered once, as a proxy."""
    backend = loopback_backend(tmp_path, write_config(tmp_path / "config", "---\n"), ingest_keys=[TOKEN])
    wrapped = {"type": "Event", "api_version": "core/v2", "metadata": {"namespace": "default"},
               "spec": {"entity": {"metadata": {"name": "switch1"}},
                        "check": {"metadata": {"name": "ports"}, "status": 1, "output": "port 7 down"}}}  # fmt: skip
    by_check = {"entity": {"entity_class": "agent", "metadata": {"name": "poller"}},
                "check": {"metadata": {"name": "ping"}, "status": 0, "proxy_entity_name": "ups1"}}  # fmt: skip
    intake = {"internalHostname": "db7", "events": {}, "metrics": [], "topologies": [], "health": [],
              "service_checks": [{"name": "db.up", "status": 0, "host_name": "db7", "message": "ok"}]}  # fmt: skip
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            url = (await nursery.start(backend.run)).api_url
            async with httpx.AsyncClient(base_url=url, headers=admin_headers(backend)) as client:
                answers = [
                    await client.post(f"{NS}/events", json=wrapped),
                    await client.post(f"{NS}/events", json=wrapped),  # known now: no second registration
                    await client.post(f"{NS}/events", json=by_check),
                    await client.post(f"/{TOKEN}/event", content=json.dumps({"message": "deployed", "host": "web9"})),
                    await client.post(f"/stsAgent/intake?api_key={TOKEN}", json=intake),
                ]
                entities = {e["metadata"]["name"]: e for e in (await client.get(f"{NS}/entities")).json()}
                event = (await client.get(f"{NS}/events/ups1/ping")).json()
                wrong = await client.post(f"{NS}/events", json={**wrapped, "type": "CheckConfig"})
            nursery.cancel_scope.cancel()
    assert [a.status_code for a in answers] == [201, 201, 201, 201, 200], [a.text for a in answers]
    assert sorted(entities) == ["db7", "switch1", "ups1", "web9"]  # the agent "poller" registers when it connects
    assert {e["entity_class"] for e in entities.values()} == {"proxy"}
    assert all(e["subscriptions"] == [f"entity:{name}"] for name, e in entities.items())
    assert all(abs(e["last_seen"] - time.time()) < 30 for e in entities.values())
    assert event["entity"]["metadata"]["name"] == "ups1"
    assert backend.metrics.registry.get_sample_value("pipeline_proxy_entities_registered_total") == 4
    assert wrong.status_code == 400
    assert wrong.json()["message"].startswith("type: ")


async def test_the_sensu_go_client_round_trips_events_and_reads_proxy_entities(tmp_path: Path) -> None:
    """The real ``sensu-go`` PyPI client: events create (a PUT after a GET that finds nothing),
    get, update (the event it read, id and all, PUT back: a new result), list and delete; the
    proxy entity the event registered, by get and list."""
    backend = loopback_backend(tmp_path, write_config(tmp_path / "config", "---\n"))
    spec = {"entity": {"entity_class": "proxy", "metadata": {"name": "router2", "namespace": "default"}},
            "check": {"metadata": {"name": "bgp", "namespace": "default"}, "status": 2, "output": "peer down",
                      "interval": 60}}  # fmt: skip

    def drive(url: str, key: str) -> dict[str, Any]:
        client = sensu_go.Client(url, api_key=key)
        seen: dict[str, Any] = {"created": client.events.create(spec, {"namespace": "default"}).spec}
        event = client.events.get("router2/bgp")
        seen["read"] = json.loads(json.dumps(event.spec))
        event.spec["check"]["status"] = 0
        event.spec["check"]["output"] = "peer up"
        event.save()  # PUT of what it read, then a GET
        seen["updated"] = event.spec
        seen["listed"] = [e.name for e in client.events.list()]
        seen["entity"] = client.entities.get("router2").spec
        seen["entities"] = [(e.name, e.spec["entity_class"]) for e in client.entities.list()]
        event.delete()
        seen["after delete"] = client.events.find("router2/bgp")
        return seen

    async with served(backend, seconds=60) as up:
        seen = await trio.to_thread.run_sync(drive, up.addresses.api_url, up.api_key)
    assert seen["created"]["check"]["status"] == 2
    assert (seen["read"]["check"]["status"], seen["read"]["check"]["output"]) == (2, "peer down")
    updated = seen["updated"]
    assert (updated["check"]["status"], updated["check"]["output"]) == (0, "peer up")
    assert [h["status"] for h in updated["check"]["history"]] == [2, 0]  # a new result, not a replay
    assert updated["id"] != seen["read"]["id"]
    assert seen["listed"] == ["router2/bgp"]
    assert seen["entity"]["entity_class"] == "proxy"
    assert seen["entity"]["subscriptions"] == ["entity:router2"]
    assert seen["entities"] == [("router2", "proxy")]
    assert seen["after delete"] is None


async def test_a_name_sensu_go_refuses_is_refused_by_either_route(tmp_path: Path) -> None:
    """Sensu Go's name rule is ASCII (its ``\\w``): ``héllo`` is a 400 naming the field, whether
    it comes in the body, percent-encoded in the path (the ASGI route) or as raw UTF-8 in the
    path (the HTTP server's direct route); nothing is stored, and the API goes on."""
    backend = loopback_backend(tmp_path, write_config(tmp_path / "config", "---\n"))
    result = {"check": {"metadata": {"name": "ping"}, "output": "ok", "status": 0}}
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            url = (await nursery.start(backend.run)).api_url
            headers = admin_headers(backend)
            async with httpx.AsyncClient(base_url=url, headers=headers) as client:
                in_body = await client.post(
                    f"{NS}/events", json={**result, "entity": {"metadata": {"name": "h\u00e9llo"}}}
                )
                in_path = await client.put(f"{NS}/events/h%C3%A9llo/ping", json=result)
                host, _, port = url.removeprefix("http://").rpartition(":")
                raw = await raw_put(host, int(port), f"{NS}/events/h\u00e9llo/ping".encode(), json.dumps(result).encode(),
                                    headers)  # fmt: skip
                ascii_name = await client.put(f"{NS}/events/hello/ping", json=result)
                listed = [e["entity"]["metadata"]["name"] for e in (await client.get(f"{NS}/events")).json()]
            nursery.cancel_scope.cancel()
    assert (in_body.status_code, in_path.status_code, ascii_name.status_code) == (400, 400, 201)
    assert in_body.json()["message"].startswith("entity.metadata.name: name 'h\u00e9llo' may contain only ASCII")
    assert "may contain only ASCII letters" in in_path.json()["message"]
    assert raw.startswith(b"HTTP/1.1 400"), raw
    assert listed == ["hello"]


async def raw_put(host: str, port: int, target: bytes, body: bytes, headers: dict[str, str]) -> bytes:
    """A PUT whose target is sent as the bytes given (a client that does not percent-encode), and
    its answer's first bytes."""
    head = b"".join(f"{name}: {value}\r\n".encode() for name, value in headers.items())
    async with await trio.open_tcp_stream(host, port) as stream:
        await stream.send_all(b"PUT " + target + b" HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                              + head + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)  # fmt: skip
        answer = b""
        while chunk := await stream.receive_some(4096):
            answer += chunk
    return answer


async def test_results_at_the_ends_of_int64_are_stored_and_read(tmp_path: Path) -> None:
    """``executed`` and a first result's own ``occurrences`` may be any int64. The last second plus
    a ttl made a deadline no store could write: the 201'd result was never stored, retried every
    second, and held every read behind it for the barrier's 5 s. Occurrences counted one past
    int64 were stored and then refused by every read: the result was never listed. Both are
    stored and read at once, the results after them too."""
    backend = loopback_backend(tmp_path, write_config(tmp_path / "config", "---\n"))
    last = 2**63 - 1
    late = {"check": {"metadata": {"name": "late"}, "status": 1, "ttl": 120, "interval": 60, "executed": last}}
    counted = {"check": {"metadata": {"name": "counted"}, "status": 2, "occurrences": last,
                         "occurrences_watermark": last, "history": [{"status": 2, "executed": 1}]}}  # fmt: skip
    after = {"check": {"metadata": {"name": "after"}, "status": 0}}
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            url = (await nursery.start(backend.run)).api_url
            async with httpx.AsyncClient(base_url=url, headers=admin_headers(backend)) as client:
                created = [(await client.put(f"{NS}/events/h/{name}", json=result)).status_code
                           for name, result in (("late", late), ("counted", counted), ("after", after))]  # fmt: skip
                stored = (await client.get(f"{NS}/events/h/late")).json()
                listed = {e["check"]["metadata"]["name"]: e["check"] for e in (await client.get(f"{NS}/events")).json()}
                metrics = (await client.get("/metrics")).text
            nursery.cancel_scope.cancel()
    assert created == [201, 201, 201]
    assert stored["check"]["executed"] == last
    assert sorted(listed) == ["after", "counted", "late"]
    assert (listed["counted"]["occurrences"], listed["counted"]["occurrences_watermark"]) == (last, last)
    assert 'pipeline_store_failures_total{operation="write_batch"}' not in metrics
    assert "pipeline_journal_retries_total 0.0" in metrics
    assert "pipeline_journal_barrier_timeouts_total 0.0" in metrics

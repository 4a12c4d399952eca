"""The agent's local HTTP API answers as Sensu Go's agent does."""

from __future__ import annotations

import functools
import json
import uuid

import httpx
import msgpack
import pytest
import trio
from prometheus_client import CollectorRegistry, Counter

from pipeline.agent.api import (
    create_agent_api,
    create_agent_app,
    prepare_local_event,
)
from pipeline.agent.spool import SetAside
from pipeline.errors import EventTooLarge, SpoolUnavailable, ValidationError
from pipeline.http import serve_app
from pipeline.model import Entity, Event, ObjectMeta
from pipeline.model.codec_pack import encode_to_pack
from pipeline.model.event import pack_with_entity, packed_entity


async def test_healthz_follows_the_backend_connection_and_metrics_are_exported() -> None:
    registry = CollectorRegistry()
    Counter("pipeline_agent_example", "An example", registry=registry).inc()
    connected = False
    app = create_agent_app(registry, lambda: connected)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://agent") as client:
        down = await client.get("/healthz")
        assert (down.status_code, down.text) == (503, "sensu backend unavailable")
        connected = True
        up = await client.get("/healthz")
        assert (up.status_code, up.text) == (200, "ok")
        metrics = await client.get("/metrics")
        assert "pipeline_agent_example_total 1.0" in metrics.text


async def test_the_set_aside_list_takes_a_bounded_limit() -> None:
    asked: list[int] = []

    async def set_aside(limit: int) -> list[SetAside]:
        asked.append(limit)
        return [SetAside("id1", 1.5, "too_large", "event of 2 bytes exceeds ...", "web1", "disk", 2)]

    app = create_agent_app(CollectorRegistry(), lambda: True, set_aside=set_aside)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://agent") as client:
        listed = await client.get("/events/set-aside")
        assert listed.json() == [{"id": "id1", "at": 1.5, "reason": "too_large", "error": "event of 2 bytes exceeds ...",
                                  "entity": "web1", "check": "disk", "size": 2}]  # fmt: skip
        assert (await client.get("/events/set-aside?limit=5")).status_code == 200
        for bad in ("0", "1001", "x", "9" * 5000, "٣"):
            refused = await client.get("/events/set-aside", params={"limit": bad})
            assert refused.status_code == 400
            assert refused.json()["message"].startswith("limit: expected 1 to 1000")
    assert asked == [100, 5]


def agent_entity() -> Entity:
    return Entity(entity_class="agent", metadata=ObjectMeta(name="web1", namespace="default"), subscriptions=["linux"])


async def test_post_events_answers_alike_through_asgi_and_without_it() -> None:
    """The HTTP server's direct route answers ``POST /events`` with the very bytes the agent's
    ASGI app (Starlette) answers it with, refusals included."""
    agent = agent_entity()
    taken: list[Event] = []

    async def submit(event: Event) -> None:
        if event.check is not None and event.check.output == "huge":
            raise EventTooLarge(3_000_000, 2_000_000)
        if event.check is not None and event.check.output == "disk full":
            raise SpoolUnavailable(10)
        taken.append(event)

    api = create_agent_api(CollectorRegistry(), lambda: True, submit, agent, wall_clock=lambda: 1_800_000_000)

    async def answers_of(client: httpx.AsyncClient) -> list[tuple[int, bytes, str | None, str | None]]:
        ok = await client.post("/events", json={"check": {"metadata": {"name": "disk"}, "status": 2}})
        bad = await client.post("/events", content=b'{"check": ')
        nameless = await client.post("/events", json={"check": {"status": 1}})
        huge = await client.post("/events", json={"check": {"metadata": {"name": "disk"}, "output": "huge"}})
        query = await client.post("/events?x=1", json={"check": {"metadata": {"name": "disk"}}})
        get = await client.get("/events")
        stuck = await client.post("/events", json={"check": {"metadata": {"name": "disk"}, "output": "disk full"}})
        return [(r.status_code, r.content, r.headers.get("content-type"), r.headers.get("retry-after"))
                for r in (ok, bad, nameless, huge, query, get, stuck)]  # fmt: skip

    answers = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://agent") as client:
        answers.append(await answers_of(client))
    async with trio.open_nursery() as nursery:
        host, port = await nursery.start(functools.partial(serve_app, api, ("127.0.0.1", 0)))
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
            answers.append(await answers_of(client))  # POST /events by the server's direct route
        nursery.cancel_scope.cancel()
    assert answers[0] == answers[1]
    statuses = [status for status, _, _, _ in answers[0]]
    assert statuses == [202, 400, 400, 413, 400, 405, 503]
    assert answers[0][6][3] == "10"  # Retry-After: the spool did not take it in time (not spooled)
    assert json.loads(answers[0][6][1])["message"].startswith("the agent's spool could not write the event within 10 s")
    assert answers[0][0][1] == b""
    assert json.loads(answers[0][2][1]) == {"code": 2, "message": "check.metadata.name: a check needs a name"}
    assert json.loads(answers[0][3][1])["message"].startswith("event of 3000000 bytes")
    assert len(taken) == 2  # one each way
    event = taken[0]
    assert event.entity is agent  # not a copy: packed below, never changed
    assert (event.check_name, event.timestamp, event.metadata.namespace) == ("disk", 1_800_000_000, "default")


def test_a_local_event_is_packed_with_the_agent_entity_encoded_once() -> None:
    agent = agent_entity()
    event = prepare_local_event(b'{"check": {"metadata": {"name": "disk"}, "output": "ok"}}', agent, 1_800_000_000)
    packed = pack_with_entity(event, packed_entity(agent))
    assert Event.from_msgpack(packed) == event
    whole = {key: value for key, value in encode_to_pack(event).items() if key != "entity"}
    whole["entity"] = encode_to_pack(agent)
    assert packed == msgpack.packb(whole, use_bin_type=True)  # byte for byte, the entity last
    assert packed == event.to_msgpack()  # as the model packs every event: the backend knows the entity again
    assert Event.from_msgpack(packed).entity == agent
    assert event.entity is agent  # given back after packing


def test_local_events_without_an_id_get_distinct_version_7_uuids() -> None:
    made = [prepare_local_event(b'{"check": {"metadata": {"name": "disk"}}}', agent_entity(), 1_800_000_000).id
            for _ in range(600)]  # fmt: skip
    assert len(set(made)) == 600
    for made_id in made:
        parsed = uuid.UUID(made_id)
        assert (str(parsed), parsed.version, parsed.variant) == (made_id, 7, uuid.RFC_4122)


def test_a_richer_local_event_is_packed_as_msgpack_packs_it() -> None:
    """ormsgpack packs the event (msgpack where it refuses): the same bytes as msgpack's map for
    an event with metrics, labels, floats, large integers and text outside ASCII."""
    agent = agent_entity()
    body = json.dumps({
        "check": {"metadata": {"name": "disk", "labels": {"région": "é✓"}, "annotations": {"a": "b"}},
                  "status": 2, "output": "plein à 99 % 🙂", "interval": 60, "executed": 2**40,
                  "duration": 0.125, "handlers": ["a", "b"], "output_metric_format": "nagios_perfdata"},
        "metrics": {"handlers": ["m"], "points": [{"name": "used", "value": 1.5e300, "timestamp": 2**62,
                                                   "tags": [{"name": "mount", "value": "/"}]}]},
        "id": "0f8fad5b-d9cb-469f-a165-70867728950e",
    }).encode()  # fmt: skip
    event = prepare_local_event(body, agent, 1_800_000_000)
    packed = pack_with_entity(event, packed_entity(agent))
    whole = {key: value for key, value in encode_to_pack(event).items() if key != "entity"}
    whole["entity"] = encode_to_pack(agent)
    assert packed == msgpack.packb(whole, use_bin_type=True) == event.to_msgpack()
    assert Event.from_msgpack(packed) == event
    assert event.id == "0f8fad5b-d9cb-469f-a165-70867728950e"  # the submitter's, kept


def test_a_submitted_id_is_still_checked_once_ours_are_given_after_validating() -> None:
    with pytest.raises(ValidationError) as refused:
        prepare_local_event(b'{"check": {"metadata": {"name": "disk"}}, "id": "nope"}', agent_entity(), 1.0)
    assert refused.value.path == "id"


#: Bodies ``POST /events`` refuses, each for its own reason.
_BAD_BODIES = [
    b"", b"null", b"[]", b'"check"', b"{", b'{"check": {"metadata": {"name": "disk"}}} trailing',
    b"\xff\xfe", b'{"check": {"metadata": {"name": "disk"}, "status": "two"}}',
    b'{"check": {"metadata": {"name": "disk"}, "status": 4294967296}}', b'{"check": {"metadata": {"name": "no/slash"}}}',
    b'{"check": {"metadata": {"name": "disk"}}, "id": "not-a-uuid"}', b'{"check": {"metadata": {"name": "disk"}}, "metadata": {"name": "x"}}',
    b'{"entity": {"metadata": {"name": "web1"}}}', b'{"check": {"metadata": {"name": "disk"}, "interval": -1}}',
    b'{"check": {"metadata": {"name": "disk"}, "output": "\\ud800"}}', b'{"check": {"metadata": {"name": "disk"}}, "x": NaN}',
]  # fmt: skip


async def test_post_events_answers_every_body_alike_ahead_of_starlette_and_through_it() -> None:
    """Good and bad bodies: the same status, headers (all of them, in order) and body bytes from
    the fast route as from the Starlette route behind it."""
    agent = agent_entity()
    taken: list[Event] = []

    async def submit(event: Event) -> None:
        taken.append(event)

    good = [b'{"check": {"metadata": {"name": "disk"}, "status": 2}}',
            b'{"check": {"metadata": {"name": "disk"}}, "entity": {"metadata": {"name": "proxy1"}}, "unknown": 1}',
            b'{"metrics": {"points": [{"name": "m", "value": 1.5}]}}']  # fmt: skip
    api = create_agent_api(CollectorRegistry(), lambda: True, submit, agent, wall_clock=lambda: 1_800_000_000)
    answers = []
    for app in (api, api.app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://agent") as client:
            replies = [await client.post("/events", content=body) for body in [*good, *_BAD_BODIES]]
        answers.append([(r.status_code, r.headers.raw, r.content) for r in replies])
    assert answers[0] == answers[1]
    assert [status for status, _, _ in answers[0]] == [202] * len(good) + [400] * len(_BAD_BODIES)
    assert len(taken) == 2 * len(good)

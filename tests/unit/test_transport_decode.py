"""The backend's decoding of an agent's events: the agent's entity decoded once while its bytes stay the same."""

from __future__ import annotations

import dataclasses
from typing import Any

import msgpack
import pytest

from pipeline.agent.agent import Agent
from pipeline.agent.api import prepare_local_event
from pipeline.agent.settings import AgentConfig
from pipeline.backend.agent_events import REMEMBER_SKIP, AgentEvents, decode_agent_event
from pipeline.errors import ValidationError
from pipeline.model import Check, Entity, Event, ObjectMeta, new_event_id
from pipeline.model import event as event_module
from pipeline.model.codec_pack import encode_to_pack
from pipeline.model.entity import proxy_entity
from pipeline.model.event import pack_with_entity, packed_entity


def _agent(name: str = "web-1", labels: dict[str, str] | None = None) -> Entity:
    entity = Entity(metadata=ObjectMeta(name=name, namespace="default", labels=labels or {}), entity_class="agent")
    entity.subscriptions = ["linux", f"entity:{name}"]
    return entity


def _packed(agent: Entity, check: str = "disk", output: str = "ok") -> bytes:
    event = prepare_local_event(b'{"check": {"metadata": {"name": "%s"}, "output": "%s"}}' % (check.encode(), output.encode()),
                                agent, 1000.0)  # fmt: skip
    return pack_with_entity(event, packed_entity(agent))


def test_the_agent_entity_is_decoded_once_and_the_events_are_what_a_whole_decode_gives() -> None:
    agent = _agent()
    decoder = AgentEvents("web-1")
    first, second = _packed(agent, "disk"), _packed(agent, "load", "high")
    events = [decoder.decode(first), decoder.decode(second), decoder.decode(first)]
    assert events[1].entity is events[0].entity is events[2].entity  # the second and third reuse it
    for raw, event in zip([first, second, first], events, strict=True):
        assert event.to_dict() == decode_agent_event(raw).to_dict()


def test_a_changed_entity_is_decoded_whole_then_remembered() -> None:
    decoder = AgentEvents("web-1")
    old = decoder.decode(_packed(_agent()))
    changed = _packed(_agent(labels={"room": "b2"}))
    new = decoder.decode(changed)
    assert new.entity is not old.entity
    assert new.entity is not None
    assert new.entity.metadata.labels == {"room": "b2"}
    assert decoder.decode(_packed(_agent(labels={"room": "b2"}))).entity is new.entity


def test_the_entity_bytes_inside_another_field_are_not_taken_for_the_entity() -> None:
    agent = _agent()
    decoder = AgentEvents("web-1")
    decoder.decode(_packed(agent))
    data = msgpack.unpackb(_packed(agent), raw=False)
    tail = b"\xa6entity" + msgpack.packb(data.pop("entity"), use_bin_type=True)
    # The last pair's value ends with the remembered suffix: the bytes before the suffix do not
    # read as the event less one pair, so it is decoded whole (and refused, as it would be).
    raw = msgpack.packb({**data, "pipelines": b"x" + tail}, use_bin_type=True)
    assert raw.endswith(tail)
    _refused_alike(decoder, raw)


def test_an_invalid_event_with_the_remembered_entity_is_refused_as_a_whole_decode_refuses_it() -> None:
    agent = _agent()
    decoder = AgentEvents("web-1")
    decoder.decode(_packed(agent))
    data = msgpack.unpackb(_packed(agent), raw=False)
    entity = data.pop("entity")
    for broken in ({**data, "id": ""}, {**data, "check": {"metadata": {"name": "bad name!"}}}, {**data, "extra": 1}):
        _refused_alike(decoder, msgpack.packb({**broken, "entity": entity}, use_bin_type=True))


def test_events_packed_another_way_are_decoded_whole_and_tried_again_later() -> None:
    agent = _agent()
    decoder = AgentEvents("web-1")
    event = prepare_local_event(b'{"check": {"metadata": {"name": "disk"}}}', agent, 1000.0)
    other = msgpack.packb(event.to_dict(), use_bin_type=True)  # another encoder's order
    assert not other.endswith(b"\xa6entity" + packed_entity(agent))  # the entity is not last
    for _ in range(REMEMBER_SKIP):  # one try, then REMEMBER_SKIP - 1 without
        assert decoder.decode(other).to_dict() == decode_agent_event(other).to_dict()
    spliced = _packed(agent)
    skipped = decoder.decode(spliced)  # the last without a try: not remembered
    tried = decoder.decode(spliced)  # remembered
    assert tried.entity is not skipped.entity
    assert decoder.decode(spliced).entity is tried.entity


def _refused_alike(decoder: AgentEvents, raw: bytes) -> None:
    """``raw`` is refused by ``decoder`` with the very words a whole decode refuses it with."""
    with pytest.raises(ValidationError) as whole:
        decode_agent_event(raw)
    with pytest.raises(ValidationError) as cached:
        decoder.decode(raw)
    assert str(cached.value) == str(whole.value)


def test_an_agents_events_carry_its_entity_packed_last_so_the_backend_decodes_it_once() -> None:
    config = AgentConfig(name="web-1", backend_addrs=[("127.0.0.1", 1)], api_addr=None)
    agent = Agent(config)
    router = proxy_entity("router", "default")

    def scheduled(entity: Entity, check: str) -> Event:  # as the executor makes them
        return Event(timestamp=1000, entity=entity, check=Check(metadata=ObjectMeta(name=check, namespace="default"),
                     status=1, output="WARNING", interval=60, executed=1000), id=new_event_id(),
                     metadata=ObjectMeta(namespace="default"))  # fmt: skip

    events = [scheduled(agent.entity, "disk"), scheduled(router, "ping"), scheduled(agent.entity, "load")]
    packed = [event.to_msgpack() for event in events]
    assert packed[0].endswith(b"\xa6entity" + packed_entity(agent.entity))
    decoder = AgentEvents("web-1")
    decoded = [decoder.decode(raw) for raw in packed]
    assert decoded[2].entity is decoded[0].entity  # the agent's own entity, decoded once
    assert decoded == events
    # Changed in place by a reload: its events carry it as it is now, not the bytes packed before.
    agent.reload(dataclasses.replace(config, labels={"room": "b2"}))
    after = Event.from_msgpack(scheduled(agent.entity, "disk").to_msgpack())
    assert after.entity is not None
    assert after.entity.metadata.labels == {"room": "b2"}
    assert after.entity == agent.entity


def test_events_of_the_remembered_entity_pack_again_to_the_bytes_they_came_as_until_it_is_forgotten(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    encoded_entities: list[Entity] = []

    def counting(obj: Any) -> dict[str, Any]:  # which entities the packing encodes
        if isinstance(obj, Event) and obj.entity is not None:
            encoded_entities.append(obj.entity)
        return encode_to_pack(obj)

    monkeypatch.setattr(event_module, "encode_to_pack", counting)
    agent = _agent()
    decoder = AgentEvents("web-1")
    raws = [_packed(agent, "disk"), _packed(agent, "load", "high")]
    events = [decoder.decode(raw) for raw in raws]
    encoded_entities.clear()
    assert [event.to_msgpack() for event in events] == raws
    assert encoded_entities == []  # the entity's bytes kept, not packed again
    check = events[1].check
    assert check is not None
    check.output = "changed"  # what the backend changes (the check's state) is packed anew
    assert Event.from_msgpack(events[1].to_msgpack()).to_dict() == events[1].to_dict()
    decoder.close()
    entity = events[0].entity
    assert entity is not None
    entity.metadata.labels["room"] = "b2"  # forgotten: packed from the model again
    assert Event.from_msgpack(events[0].to_msgpack()).to_dict() == events[0].to_dict()
    assert encoded_entities == [entity]

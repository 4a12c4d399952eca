"""The backend's decoding of an agent's events: the agent's entity decoded once while its bytes stay the same."""

from __future__ import annotations

import msgpack
import pytest

from pipeline.agent.api import pack_local_event, prepare_local_event
from pipeline.backend.agent_events import REMEMBER_SKIP, AgentEvents, decode_agent_event
from pipeline.errors import ValidationError
from pipeline.model import Entity, ObjectMeta
from pipeline.model.event import packed_entity


def _agent(name: str = "web-1", labels: dict[str, str] | None = None) -> Entity:
    entity = Entity(metadata=ObjectMeta(name=name, namespace="default", labels=labels or {}), entity_class="agent")
    entity.subscriptions = ["linux", f"entity:{name}"]
    return entity


def _packed(agent: Entity, check: str = "disk", output: str = "ok") -> bytes:
    event = prepare_local_event(b'{"check": {"metadata": {"name": "%s"}, "output": "%s"}}' % (check.encode(), output.encode()),
                                agent, 1000.0)  # fmt: skip
    return pack_local_event(event, packed_entity(agent))


def test_the_agent_entity_is_decoded_once_and_the_events_are_what_a_whole_decode_gives() -> None:
    agent = _agent()
    decoder = AgentEvents()
    first, second = _packed(agent, "disk"), _packed(agent, "load", "high")
    events = [decoder.decode(first), decoder.decode(second), decoder.decode(first)]
    assert events[1].entity is events[0].entity is events[2].entity  # the second and third reuse it
    for raw, event in zip([first, second, first], events, strict=True):
        assert event.to_dict() == decode_agent_event(raw).to_dict()


def test_a_changed_entity_is_decoded_whole_then_remembered() -> None:
    decoder = AgentEvents()
    old = decoder.decode(_packed(_agent()))
    changed = _packed(_agent(labels={"room": "b2"}))
    new = decoder.decode(changed)
    assert new.entity is not old.entity
    assert new.entity is not None
    assert new.entity.metadata.labels == {"room": "b2"}
    assert decoder.decode(_packed(_agent(labels={"room": "b2"}))).entity is new.entity


def test_the_entity_bytes_inside_another_field_are_not_taken_for_the_entity() -> None:
    agent = _agent()
    decoder = AgentEvents()
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
    decoder = AgentEvents()
    decoder.decode(_packed(agent))
    data = msgpack.unpackb(_packed(agent), raw=False)
    entity = data.pop("entity")
    for broken in ({**data, "id": ""}, {**data, "check": {"metadata": {"name": "bad name!"}}}, {**data, "extra": 1}):
        _refused_alike(decoder, msgpack.packb({**broken, "entity": entity}, use_bin_type=True))


def test_events_packed_another_way_are_decoded_whole_and_tried_again_later() -> None:
    agent = _agent()
    decoder = AgentEvents()
    other = prepare_local_event(b'{"check": {"metadata": {"name": "disk"}}}', agent, 1000.0).to_msgpack()
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

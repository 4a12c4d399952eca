"""Agents' events as they arrive in transport frames: decoded, validated, and an agent's own
entity decoded once per connection while its bytes stay the same (:class:`AgentEvents`)."""

from __future__ import annotations

from typing import Any

import msgpack

from pipeline.errors import EventTooLarge, ValidationError
from pipeline.model import Entity, Event
from pipeline.model.event import ENTITY_KEY, forget_packed, know_packed, packed_entity
from pipeline.wire.limits import MAX_EVENT_BYTES
from pipeline.wire.messages import EventData


def decode_agent_event(raw: EventData) -> Event:
    """An event from an agent's frame (msgpack bytes or a map), validated (raises ValidationError,
    EventTooLarge for one over the maximum event size: the limit holds on the backend too)."""
    size = len(raw) if isinstance(raw, bytes) else len(msgpack.packb(raw, use_bin_type=True))
    if size > MAX_EVENT_BYTES:
        raise EventTooLarge(size, MAX_EVENT_BYTES)
    event = Event.from_msgpack(raw) if isinstance(raw, bytes) else Event.from_dict(raw)
    event.validate()
    if not event.id:
        raise ValidationError("id", "an agent event must carry an id")
    return event


#: After an event whose entity could not be remembered, this many are decoded whole before the
#: next try: events packed another way cost that try once in this many.
REMEMBER_SKIP = 64


class AgentEvents:
    """Decodes one connection's events, the entity an agent's events end with decoded once while
    its bytes stay the same (decoding the agent's entity was about half of decoding its event).

    An event whose bytes end with ``"entity"`` and the remembered entity's bytes is decoded without
    them, and given the remembered :class:`Entity` (shared by its events, as the event processor
    shares a known proxy entity). That is exact: msgpack reads a map's pairs in order, so when the
    bytes before that suffix read as the event's map less one pair, with no byte left over, the
    last pair is ``"entity"`` and those very bytes. Anything else (another encoder, the entity
    elsewhere, a changed entity, an event refused) is decoded whole by :func:`decode_agent_event`;
    after such an event its entity is remembered when its bytes end the event and it is the
    agent's own (``agent``: its name). A proxy entity is not: it is small, and remembering it
    would forget the agent's, which most of the connection's events carry. The remembered
    entity's bytes are kept for packing its events again (:func:`know_packed`) until
    :meth:`close` (or the next entity remembered)."""

    __slots__ = ("_agent", "_entity", "_skip", "_suffix")

    def __init__(self, agent: str) -> None:
        self._agent = agent
        self._suffix = b""
        self._entity: Entity | None = None
        #: events decoded whole before the next try to remember an entity (see _remember)
        self._skip = 0

    def close(self) -> None:
        """Forget the remembered entity (its packed bytes are no longer kept for it either)."""
        if self._entity is not None:
            forget_packed(self._entity)
            self._entity, self._suffix = None, b""

    def decode(self, raw: EventData) -> Event:
        if self._entity is not None and isinstance(raw, bytes) and raw.endswith(self._suffix):
            event = self._without_entity(raw, len(self._suffix))
            if event is not None:
                return event
        event = decode_agent_event(raw)
        if isinstance(raw, bytes):
            self._remember(raw, event)
        return event

    def _without_entity(self, raw: bytes, suffix: int) -> Event | None:
        """The event decoded from its bytes less the remembered entity's pair, None when those
        bytes are not the event's map less its last pair (or not a valid event: decoded whole)."""
        head = raw[0]
        if not 0x81 <= head <= 0x8F or len(raw) > MAX_EVENT_BYTES:  # a fixmap of 1-15 pairs, as events are
            return None
        try:
            data = msgpack.unpackb(bytes((head - 1,)) + raw[1:-suffix], raw=False, strict_map_key=True)
            if "entity" in data:
                return None
            event = Event.from_dict(data)
            event.entity = self._entity
            event.validate(entity_validated=True)  # validated when it was remembered
        except (ValueError, msgpack.UnpackException, ValidationError):  # ExtraData is a ValueError
            return None
        return event if event.id else None

    def _remember(self, raw: bytes, event: Event) -> None:
        """Remember the event's entity when its bytes end the event as the agent packs them (the
        model's encoding of the entity: what the agent packs its own with)."""
        if event.entity is None or event.entity.metadata.name != self._agent:
            return
        if self._skip:
            self._skip -= 1
            return
        packed = packed_entity(event.entity)
        suffix = ENTITY_KEY + packed
        if raw.endswith(suffix):
            self.close()
            self._suffix, self._entity = suffix, event.entity
            know_packed(event.entity, packed)  # its events are packed again for the store: not their entity
        else:  # packed otherwise (another encoder, the entity elsewhere): a try costs about 5 µs
            self._skip = REMEMBER_SKIP


def id_of(raw: EventData) -> str:
    """The id of an event that failed to decode, if it can be read at all (for the reject)."""
    found: Any = raw
    if isinstance(raw, bytes):
        try:
            found = msgpack.unpackb(raw, raw=False)
        except (ValueError, msgpack.UnpackException):
            return ""
    value = found.get("id", "") if isinstance(found, dict) else ""
    return value if isinstance(value, str) else ""

"""Event: one check result, one set of metrics, or both, about one entity.

The dict shape is Sensu Go's v2 event JSON; the same dict, packed with msgpack, is what travels
on the wire. ``to_json``/``from_json`` and ``to_msgpack``/``from_msgpack`` round-trip exactly.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from dataclasses import dataclass
from typing import Any

import msgpack
import orjson
import ormsgpack

from pipeline.errors import UnknownFieldError, ValidationError
from pipeline.model.check import Check
from pipeline.model.codec import (
    INT64,
    JSON,
    check_ranges,
    decode,
    encode,
    field,
    known_fields_only,
    load_json,
    shallow_copy,
)
from pipeline.model.codec_pack import encode_to_pack
from pipeline.model.entity import Entity
from pipeline.model.meta import ObjectMeta, ResourceReference, refuse_other_reference, refuse_unsupported
from pipeline.model.metrics import Metrics


def pack_map(data: dict[str, Any]) -> bytes:
    """An event's map (or part of one) packed: by ormsgpack (2.2 µs for a check event's map
    against 5.5 with msgpack, the same bytes), or where it refuses (a key that is not a string,
    an integer past 64 bits, a lone surrogate, nesting past 255) by msgpack, which packs it or
    says why as it always did."""
    try:
        return ormsgpack.packb(data)
    except TypeError:
        packed: bytes = msgpack.packb(data, use_bin_type=True)
        return packed


#: A UUID in its canonical form (``uuid.UUID`` takes it, and others).
_CANONICAL_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def event_json(event: Event, data: dict[str, Any]) -> bytes:
    """``data``, the event's map (:meth:`Event.to_dict`), as compact JSON (UTF-8, nothing
    escaped but what must be): by orjson (4.5 µs for a check event with 21 history entries
    against 35 with ``json.dumps``), or ``json.dumps`` where orjson would write other values or
    refuses (a key that is not a string, an integer past 64 bits, a lone surrogate, deep
    nesting): json.dumps then writes it, or fails, as it always did. Numbers keep their values;
    orjson writes an exponent as Go and JavaScript do (``1e-7``, not Python's ``1e-07``)."""
    if _floats_all_finite(event):
        try:
            return orjson.dumps(data)
        except TypeError:
            pass
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def _floats_all_finite(event: Event) -> bool:
    """Whether every float of the event is finite, as orjson needs to write what json.dumps
    writes (it writes NaN and the infinities as ``null``; json.dumps as ``NaN`` and ``Infinity``,
    which the pipeline's own plugins read back: a metric point may hold one). The model's floats
    are a check's duration and the metric points' values; a free-form field (a check's
    ``subdue``, ``fallback_pipeline``) is not walked: one that is set goes to json.dumps."""
    if event.fallback_pipeline is not None:
        return False
    check, metrics = event.check, event.metrics
    if check is not None and (check.subdue is not None or check.fallback_pipeline is not None
                              or not math.isfinite(check.duration)):  # fmt: skip
        return False
    isfinite = math.isfinite
    return metrics is None or all(isfinite(point.value) for point in metrics.points)


#: The msgpack of the key ``"entity"``. An agent packs its own entity last in an event, once for
#: all its events (:func:`packed_entity`); the backend knows those bytes again by this suffix.
ENTITY_KEY = msgpack.packb("entity")


def packed_entity(entity: Entity) -> bytes:
    """The msgpack bytes of an entity as :meth:`Event.to_msgpack` packs it inside an event: as
    an agent splices them into its events, and as the backend packs it to know them again (both
    sides must pack it the same way)."""
    return pack_map(encode_to_pack(entity))


def pack_with_entity(event: Event, entity: bytes) -> bytes:
    """The event's msgpack bytes (:meth:`Event.to_msgpack`'s) given its entity's
    (:func:`packed_entity`), which are most of an event's: the rest of its map packed, its count
    one more, then ``"entity"`` and those bytes. The event is not changed, not even for a moment
    (a store's thread may pack it): a copy without its entity is packed (0.3 µs)."""
    rest_of_it = shallow_copy(event)
    rest_of_it.entity = None
    rest = pack_map(encode_to_pack(rest_of_it))  # packed at once and dropped: its lists need not be copies
    assert 0x80 <= rest[0] < 0x8F, "an event has 9 fields at most: a fixmap (15 pairs at most)"
    return b"".join((bytes((rest[0] + 1,)), memoryview(rest)[1:], ENTITY_KEY, entity))


#: Entities that many events share, each with its :func:`packed_entity` bytes, by ``id()``: an
#: event carrying one is packed with those bytes (:meth:`Event.to_msgpack`) rather than encoding
#: the entity again. Whoever registers one (:func:`know_packed`) promises that it is not changed
#: while registered, as the events sharing it already require; bounded, as names come from outside.
_KNOWN_BYTES: dict[int, tuple[Entity, bytes]] = {}
KNOWN_BYTES_MAX = 16384


def know_packed(entity: Entity, packed: bytes) -> None:
    """Remember ``entity``'s bytes (``packed_entity(entity)``) until :func:`forget_packed`."""
    if len(_KNOWN_BYTES) >= KNOWN_BYTES_MAX:
        _KNOWN_BYTES.clear()  # a memo: dropping it costs speed, never a wrong byte
    _KNOWN_BYTES[id(entity)] = (entity, packed)


def forget_packed(entity: Entity) -> None:
    known = _KNOWN_BYTES.get(id(entity))
    if known is not None and known[0] is entity:
        del _KNOWN_BYTES[id(entity)]


@dataclass(slots=True)
class Event:
    """A Sensu v2 event. ``id`` is the canonical UUID string; ``timestamp`` is in seconds."""

    timestamp: int = field(0, omitempty=True, bounds=INT64)
    entity: Entity | None = field(None, omitempty=True)
    check: Check | None = field(None, omitempty=True)
    metrics: Metrics | None = field(None, omitempty=True)
    metadata: ObjectMeta = field(factory=ObjectMeta)
    id: str = field("")
    sequence: int = field(0, bounds=INT64)
    pipelines: list[ResourceReference] = field([])
    fallback_pipeline: JSON = field(None, omitempty=True)

    # -- derived facts, as Sensu Go synthesizes them for filters ------------------------------

    @property
    def has_check(self) -> bool:
        return self.check is not None

    @property
    def has_metrics(self) -> bool:
        return self.metrics is not None

    @property
    def is_incident(self) -> bool:
        return self.check is not None and self.check.status != 0

    @property
    def is_resolution(self) -> bool:
        check = self.check
        if check is None or len(check.history) < 2:
            return False
        return check.history[-2].status != 0 and check.status == 0

    @property
    def is_silenced(self) -> bool:
        return self.check is not None and bool(self.check.silenced)

    @property
    def entity_name(self) -> str:
        return self.entity.metadata.name if self.entity is not None else ""

    @property
    def check_name(self) -> str:
        return self.check.metadata.name if self.check is not None else ""

    @property
    def namespace(self) -> str:
        if self.entity is not None and self.entity.metadata.namespace:
            return self.entity.metadata.namespace
        return self.metadata.namespace

    # -- validation ----------------------------------------------------------------------------

    def validate(self, *, entity_validated: bool = False) -> None:
        """Sensu Go's ``Event.Validate``, with errors that name the field. The ranges of its
        numbers are the decoder's to check; an event built in code calls :meth:`check_ranges`.
        ``entity_validated``: the entity is one validated already, shared by many events (an
        agent's own): not validated again for each."""
        if self.entity is None:
            raise ValidationError("entity", "event must contain an entity")
        if self.check is None and self.metrics is None:
            raise ValidationError("", "event must contain a check or metrics")
        if self.metadata.name:
            raise ValidationError("metadata.name", "events cannot be named")
        if not entity_validated:
            self.entity.validate("entity")
        if self.check is not None:
            self.check.validate("check")
            refuse_unsupported(self.check, ("fallback_pipeline",), "check")
        refuse_unsupported(self, ("fallback_pipeline",), "")
        for i, ref in enumerate(self.pipelines):
            refuse_other_reference(ref, "Pipeline", f"pipelines[{i}]")
        if self.id and not _CANONICAL_UUID.fullmatch(self.id):  # the usual form at a fifth of the cost
            try:
                uuid.UUID(self.id)  # the other forms it takes (no hyphens, braces, a urn: prefix)
            except ValueError:
                raise ValidationError("id", f"expected a UUID, got {self.id!r}") from None

    def check_ranges(self) -> None:
        """ValidationError for a number out of its field's range: for an event built in code (a
        push adapter's, a legacy result), which no decoder has checked."""
        check_ranges(self)

    # -- conversion ----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return encode(self)

    @classmethod
    def from_dict(cls, data: Any, *, ignored: list[str] | None = None) -> Event:
        """Decode without validating; call :meth:`validate` for Sensu's event rules. Unknown fields
        are an error, unless ``ignored`` is given: then they are dropped and their paths put there."""
        try:
            return decode(cls, data)
        except UnknownFieldError:
            if ignored is None:
                raise
        known, dropped = known_fields_only(cls, data)
        ignored.extend(dropped)
        return decode(cls, known)

    def to_json(self) -> bytes:
        return event_json(self, self.to_dict())

    @classmethod
    def from_json(cls, raw: bytes | str, *, ignored: list[str] | None = None, allow_nan: bool = False) -> Event:
        """Parsed strictly (see :func:`load_json`); ``allow_nan`` for events the pipeline wrote
        itself, whose metric points may hold NaN or infinities."""
        return cls.from_dict(load_json(raw, allow_nan=allow_nan), ignored=ignored)

    def to_msgpack(self) -> bytes:
        """The event's map packed (see :func:`pack_map`), its entity last: as an agent packs its
        own entity once for all its events (:data:`ENTITY_KEY`), so that the backend decodes an
        agent's entity once while its bytes stay the same, whichever way the agent packed."""
        entity = self.entity
        if entity is not None:
            known = _KNOWN_BYTES.get(id(entity))
            if known is not None and known[0] is entity:
                return pack_with_entity(self, known[1])
        data = encode_to_pack(self)  # packed here and dropped: its lists need not be copies
        packed_entity = data.pop("entity", None)
        if packed_entity is not None:
            data["entity"] = packed_entity
        return pack_map(data)

    @classmethod
    def from_msgpack(cls, raw: bytes) -> Event:
        try:
            data = msgpack.unpackb(raw, raw=False, strict_map_key=True)
        except (ValueError, msgpack.UnpackException) as exc:
            raise ValidationError("", f"invalid msgpack: {exc}") from None
        return cls.from_dict(data)

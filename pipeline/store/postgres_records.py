"""The PostgreSQL store's rows: what an event becomes to be stored, what a stored blob becomes
again, and the timeline's filters. Plain functions: the decoders raise what the model raises,
which :class:`~pipeline.store.unreadable.Unreadable` turns into a skipped, counted row."""

from __future__ import annotations

import msgpack

from pipeline.errors import StoreError, ValidationError
from pipeline.model import DEFAULT_NAMESPACE, Entity, Event
from pipeline.model.codec import decode
from pipeline.model.deadletter import DeadLetter
from pipeline.model.pipeline import Silenced
from pipeline.store.base import TimelineQuery

EventRow = tuple[str, str, str, int, int, str, bytes]


def pack(event: Event) -> bytes:
    """The whole event, as a handler job keeps it."""
    try:
        return event.to_msgpack()
    except (ValueError, TypeError, OverflowError) as exc:  # UnicodeEncodeError is a ValueError; an int past 64 bits
        raise StoreError(f"event {event.id} cannot be serialised: {exc}") from exc


def event_row(event: Event) -> EventRow:
    """(namespace, entity, check, status, timestamp, id, event msgpack) of a check event, its
    metrics left out (as in Sensu Go, metrics are not kept with check events)."""
    assert event.check is not None
    stored = event
    if event.metrics is not None:
        stored = Event(timestamp=event.timestamp, entity=event.entity, check=event.check, metadata=event.metadata,
                       id=event.id, sequence=event.sequence, pipelines=event.pipelines,
                       fallback_pipeline=event.fallback_pipeline)  # fmt: skip
    namespace = event.namespace or DEFAULT_NAMESPACE
    return (namespace, event.entity_name, event.check_name, event.check.status, event.timestamp, event.id,
            pack(stored))  # fmt: skip


def _unreadable(kind: str, exc: Exception) -> StoreError:
    return StoreError(f"a stored {kind} cannot be read: {exc}")


def event(blob: bytes) -> Event:
    try:
        return Event.from_msgpack(bytes(blob))
    except ValidationError as exc:
        raise _unreadable("event", exc) from exc


def entity(blob: bytes) -> Entity:
    try:
        return decode(Entity, msgpack.unpackb(blob, raw=False), "entity")
    except (ValidationError, ValueError, msgpack.UnpackException) as exc:
        raise _unreadable("entity", exc) from exc


def dead_letter(blob: bytes) -> DeadLetter:
    try:
        return decode(DeadLetter, msgpack.unpackb(blob, raw=False), "dead_letter")
    except (ValidationError, ValueError, msgpack.UnpackException) as exc:
        raise _unreadable("dead letter", exc) from exc


def silence(blob: bytes) -> Silenced:
    return decode(Silenced, msgpack.unpackb(blob, raw=False), "silenced")


def timeline_clauses(query: TimelineQuery) -> tuple[list[str], list[str | int]]:
    """The WHERE clauses of a timeline page, and their parameters."""
    clauses: list[str] = ["namespace = %s"]
    params: list[str | int] = [query.namespace]
    for clause, value in (("timestamp >= %s", query.since), ("timestamp <= %s", query.until),
                          ("entity = %s", query.entity or None), ("check_name = %s", query.check or None)):  # fmt: skip
        if value is not None:
            clauses.append(clause)
            params.append(value)
    if query.after is not None:
        clauses.append("(timestamp, seq) > (%s, %s)")
        params.extend(query.after)
    return clauses, params

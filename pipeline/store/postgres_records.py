"""The PostgreSQL store's rows: what an event becomes to be stored, what a stored blob becomes
again, and the timeline's filters. Plain functions: the decoders raise what the model raises,
which :class:`~pipeline.store.unreadable.Unreadable` turns into a skipped, counted row."""

from __future__ import annotations

import msgpack

from pipeline.errors import StoreError, ValidationError
from pipeline.model import Entity, Event
from pipeline.model.codec import decode
from pipeline.model.deadletter import DeadLetter
from pipeline.model.pipeline import Silenced
from pipeline.store.base import TimelineQuery


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

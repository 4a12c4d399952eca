"""What both stores write for an event: its msgpack (a handler job keeps the whole event) and
the row of a check event (its metrics left out, as in Sensu Go metrics are not kept with check
events). Shared by the SQLite and PostgreSQL stores."""

from __future__ import annotations

from pipeline.errors import StoreRefused
from pipeline.model import DEFAULT_NAMESPACE, Event

#: (namespace, entity, check, status, timestamp, id, event msgpack)
EventRow = tuple[str, str, str, int, int, str, bytes]


def pack(event: Event) -> bytes:
    """The whole event, as a handler job keeps it (StoreRefused when it cannot be serialised)."""
    try:
        return event.to_msgpack()
    except (ValueError, TypeError, OverflowError) as exc:  # UnicodeEncodeError is a ValueError; an int past 64 bits
        raise StoreRefused(f"event {event.id} cannot be serialised: {exc}") from exc


def event_row(event: Event) -> EventRow:
    """The stored row of a check event."""
    assert event.check is not None
    stored = event
    if event.metrics is not None:
        stored = Event(timestamp=event.timestamp, entity=event.entity, check=event.check, metadata=event.metadata,
                       id=event.id, sequence=event.sequence, pipelines=event.pipelines,
                       fallback_pipeline=event.fallback_pipeline)  # fmt: skip
    namespace = event.namespace or DEFAULT_NAMESPACE
    return (namespace, event.entity_name, event.check_name, event.check.status, event.timestamp, event.id,
            pack(stored))  # fmt: skip


def refuse_rows_with_merge(rows: object, merge: object) -> None:
    """Rows packed by a caller are the events as they came; a merge changes (and drops) events in
    the transaction, so both at once would store rows that are not the merged events."""
    if rows is not None and merge is not None:
        raise ValueError("write_batch: rows packed by the caller cannot go with a merge")

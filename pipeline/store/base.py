"""The event store interface. Implementations are synchronous; the backend calls them from
worker threads (``trio.to_thread``), one batch per call for writes."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

from pipeline.model import Check, Entity, Event
from pipeline.model.apikey import StoredKey
from pipeline.model.deadletter import DeadLetter
from pipeline.model.pipeline import Silenced

#: (namespace, entity name, check name)
CheckKey = tuple[str, str, str]


@dataclass(slots=True, frozen=True)
class TimelineQuery:
    namespace: str
    since: int | None = None
    until: int | None = None
    entity: str = ""
    #: the check name: ``deployment``, ``keepalive``, ``disk`` ...
    check: str = ""
    limit: int = 100
    #: (timestamp, seq) of the last event of the previous page
    after: tuple[int, int] | None = None

    @staticmethod
    def cursor(text: str) -> tuple[int, int]:
        """A page cursor from its text (raises ValueError)."""
        timestamp, _, seq = text.partition(":")
        return int(timestamp), int(seq)


class EventStore(Protocol):
    def open(self) -> None:
        """Connect and create the schema if needed (idempotent)."""

    def close(self) -> None: ...

    def write_batch(self, events: Sequence[Event]) -> None:
        """Store the check events of ``events`` in one transaction: each replaces the latest
        event of its check and is appended to the event log. Metrics-only events are not
        stored, and metrics are not kept with check events (as in Sensu Go)."""

    def known_ids(self, ids: Collection[str]) -> set[str]:
        """Which of ``ids`` are already in the event log."""
        ...

    def get_event(self, namespace: str, entity: str, check: str) -> Event | None: ...

    def list_events(self, namespace: str | None = None, entity: str | None = None) -> list[Event]:
        """Latest events, by entity then check; ``namespace`` None means every namespace."""
        ...

    def latest_checks(self) -> dict[CheckKey, Check]:
        """Every check's latest result, to load state into memory at start."""
        ...

    def delete_event(self, namespace: str, entity: str, check: str) -> bool: ...

    def event_log(self, namespace: str, entity: str, check: str, limit: int = 100) -> list[Event]:
        """Past events of one check, newest first."""
        ...

    def count_log(self) -> int: ...

    def put_entity(self, entity: Entity) -> bool:
        """Store (or replace) an entity; True when it is new (a registration)."""
        ...

    def delete_entity(self, namespace: str, name: str) -> list[Event]:
        """Remove an entity and its latest events; the event log keeps its past. Returns the events."""
        ...

    def get_entity(self, namespace: str, name: str) -> Entity | None: ...

    def list_entities(self, namespace: str | None = None) -> list[Entity]: ...

    def put_dead_letter(self, letter: DeadLetter) -> None:
        """Store (or update) an event a handler failed to take."""

    def delete_dead_letter(self, letter_id: str) -> bool: ...

    def list_dead_letters(self) -> list[DeadLetter]:
        """Oldest first."""
        ...

    def get_dead_letter(self, letter_id: str) -> DeadLetter | None: ...

    def put_silence(self, entry: Silenced) -> None: ...

    def delete_silence(self, namespace: str, name: str) -> bool: ...

    def seed_silences(self, entries: Sequence[tuple[str, Silenced]]) -> list[Silenced]:
        """Store each (key, silence) whose key was never seeded before; return those stored."""
        ...

    def list_silences(self) -> list[Silenced]: ...

    def timeline(self, query: TimelineQuery) -> tuple[list[Event], str]:
        """Logged events in time order, and the cursor of the next page ("" when none)."""
        ...

    def put_api_key(self, key: StoredKey) -> None: ...

    def delete_api_key(self, key_id: str) -> bool: ...

    def list_api_keys(self) -> list[StoredKey]: ...

    def put_resource(self, kind: str, namespace: str, name: str, document: bytes | None) -> None:
        """A resource changed through the API: its JSON document, or None when deleted."""

    def list_resources(self) -> list[tuple[str, str, str, bytes | None]]: ...

"""The store's interface: one narrow protocol per kind of record, and :class:`EventStore`, all
of them together. Implementations are synchronous; the backend reaches them only through
:class:`pipeline.store.service.StoreService`, which owns the thread hops and their limits."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

from pipeline.core.cluster import Connection, Heartbeat
from pipeline.core.numbers import parse_int
from pipeline.model import DEFAULT_NAMESPACE, Check, Entity, Event
from pipeline.model.apikey import StoredKey
from pipeline.model.codec import INT64
from pipeline.model.deadletter import DeadLetter
from pipeline.model.outbox import Completion, StoredJob
from pipeline.model.pipeline import Silenced
from pipeline.store.rows import EventRow
from pipeline.store.unreadable import Unreadable

#: (namespace, entity name, check name)
CheckKey = tuple[str, str, str]
#: The kinds of record every backend holds in memory, whose changes the store counts.
RESOURCES, SILENCES, KEYS = "resources", "silences", "keys"
FOLLOWED = (RESOURCES, SILENCES, KEYS)
#: Sets a check event's ``check`` to its result merged with the check's latest stored one (None
#: for its first): what a shared store calls under each check's lock (pipeline/core/result_merge.py).
#: False drops the event (it was made on a view of the check a newer result has overtaken).
Merge = Callable[[Event, Check | None], bool]


def check_key(event: Event) -> CheckKey:
    return (event.namespace or DEFAULT_NAMESPACE, event.entity_name, event.check_name)


def merge_in_order(checks: Sequence[Event], latest: dict[CheckKey, Check | None], merge: Merge) -> set[int]:
    """Call ``merge`` for each check event in order, each with its check's latest result
    (``latest``, read under the lock; a kept event becomes the next one's); the ``id()`` of the
    events it dropped."""
    dropped: set[int] = set()
    for event in checks:
        key = check_key(event)
        if merge(event, latest.get(key)):
            latest[key] = event.check
        else:
            dropped.add(id(event))
    return dropped


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
        """A page cursor from its text: two int64s, as the store wrote them (raises ValueError)."""
        timestamp, _, seq = text.partition(":")
        first, second = parse_int(timestamp, INT64), parse_int(seq, INT64)
        if first is None or second is None:
            raise ValueError(f"not a cursor: {text[:60]!r}")
        return first, second


class EventRecords(Protocol):
    """Each check's latest event and the event log, with the outbox written beside them."""

    def write_batch(
        self,
        events: Sequence[Event],
        outbox: Sequence[Event] = (),
        *,
        merge: Merge | None = None,
        rows: Sequence[EventRow] | None = None,
    ) -> list[int]:
        """Store the check events of ``events`` and put every event of ``outbox`` in the outbox,
        in one transaction; return the outbox rows (``HandlerJob.seq``) in ``outbox``'s order.
        Each check event replaces the latest event of its check and is appended to the event
        log. Metrics-only events are not stored, and metrics are not kept with check events
        (as in Sensu Go); the outbox keeps whole events. With ``merge``, inside the transaction
        and under a lock on each check of the batch, ``merge(event, latest)`` is called for each
        check event in order (a later event of a check sees the earlier one merged) before
        anything is written; an event it answers False for is neither stored nor given a job
        (its row is 0). ``rows``: the check events' :func:`~pipeline.store.rows.event_row`, in
        order, packed by the caller (never with ``merge``, which changes the events); None: packed
        here."""
        ...

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

    def due_checks(self, now: int, limit: int) -> list[CheckKey]:
        """The checks whose latest result is due a look by ``now`` (a keepalive past its agent's
        next threshold, a check past its ttl: ``pipeline.core.keepalive.stale_at``), most
        overdue first."""
        ...

    def timeline(self, query: TimelineQuery) -> tuple[list[Event], str]:
        """Logged events in time order, and the cursor of the next page ("" when none)."""
        ...


class OutboxRecords(Protocol):
    """Handler work not yet done (see :mod:`pipeline.model.outbox`)."""

    def put_jobs(self, events: Sequence[Event]) -> list[int]:
        """Events to hand to the handlers, with no check state (registrations); their rows."""
        ...

    def pending_jobs(self, after: int, limit: int, backend: str | None = None) -> list[StoredJob]:
        """Jobs not done, oldest first, from the row after ``after`` (held by ``backend``, if given)."""
        ...

    def claim_jobs(self, lease: float, limit: int) -> list[StoredJob]:
        """Take over, for this store's backend, up to ``limit`` jobs held by other backends with
        no heartbeat in the last ``lease`` seconds (by the store's clock), oldest first. Backends
        claiming at once share them out: each job goes to one."""
        ...

    def complete(self, completions: Sequence[Completion]) -> None:
        """Record, in one transaction, workflows that ran and jobs that are done."""

    def count_jobs(self) -> int: ...

    def last_job(self) -> int:
        """The newest job's row (0 when the outbox is empty)."""
        ...


class EntityRecords(Protocol):
    def put_entity(self, entity: Entity) -> bool:
        """Store (or replace) an entity; True when it is new (a registration)."""
        ...

    def add_entity(self, entity: Entity) -> bool:
        """Store an entity unless one of that name is stored (a proxy never replaces an agent);
        True when it was added."""
        ...

    def delete_entity(self, namespace: str, name: str) -> list[Event]:
        """Remove an entity and its latest events; the event log keeps its past. Returns the events."""
        ...

    def get_entity(self, namespace: str, name: str) -> Entity | None: ...

    def list_entities(self, namespace: str | None = None) -> list[Entity]: ...


class DeadLetterRecords(Protocol):
    def put_dead_letter(self, letter: DeadLetter) -> None:
        """Store (or update) an event a handler failed to take."""

    def delete_dead_letter(self, letter_id: str) -> bool: ...

    def list_dead_letters(self) -> list[DeadLetter]:
        """Oldest first."""
        ...

    def get_dead_letter(self, letter_id: str) -> DeadLetter | None: ...


class SilenceRecords(Protocol):
    def put_silence(self, entry: Silenced) -> None: ...

    def delete_silence(self, namespace: str, name: str) -> bool: ...

    def seed_silences(self, entries: Sequence[tuple[str, Silenced]]) -> list[Silenced]:
        """Store each (key, silence) whose key was never seeded before; return those stored."""
        ...

    def list_silences(self) -> list[Silenced]: ...


class KeyRecords(Protocol):
    def put_api_key(self, key: StoredKey) -> None: ...

    def delete_api_key(self, key_id: str) -> bool: ...

    def list_api_keys(self) -> list[StoredKey]: ...


class ResourceRecords(Protocol):
    def put_resource(self, kind: str, namespace: str, name: str, document: bytes | None) -> None:
        """A resource changed through the API: its JSON document, or None when deleted."""

    def put_resources(self, changes: list[tuple[str, str, str, bytes | None]]) -> None:
        """Several resource changes in one transaction: all are stored or none."""

    def forget_resource(self, kind: str, namespace: str, name: str) -> bool:
        """Drop the API's change of a resource (the config files' version runs again)."""

    def list_resources(self) -> list[tuple[str, str, str, bytes | None]]: ...


class BackendRecords(Protocol):
    """The backends sharing the store (see :mod:`pipeline.core.cluster`)."""

    def beat(self, backend: Heartbeat) -> list[Heartbeat]:
        """Record a beat of ``backend`` (its ``beat`` is ignored: the store's clock gives the
        time); every backend's last beat, this one's included, each with the store's time."""
        ...

    def leave(self, name: str) -> None:
        """A backend that stops cleanly leaves at once: the others need not wait for its lease."""

    def set_connections(self, agents: Sequence[Connection]) -> None:
        """The agents connected to this store's backend are now ``agents``."""

    def connections(self, lease: float) -> list[tuple[str, str, str, list[str]]]:
        """(namespace, agent, backend, subscriptions) of every agent connected to a backend with
        a heartbeat in the last ``lease`` seconds."""
        ...

    def put_executions(self, requests: Sequence[tuple[str, bytes]]) -> None:
        """Queue check execution requests, each (backend to deliver it, request)."""

    def take_executions(self, limit: int) -> list[bytes]:
        """The execution requests queued for this store's backend, oldest first, taken (deleted)."""
        ...

    def revisions(self) -> dict[str, int]:
        """How many times each of :data:`FOLLOWED` has changed (a kind never changed is absent):
        every backend holds them in memory and reads again the kinds whose revision moved."""
        ...


class EventStore(
    EventRecords,
    OutboxRecords,
    EntityRecords,
    DeadLetterRecords,
    SilenceRecords,
    KeyRecords,
    ResourceRecords,
    BackendRecords,
    Protocol,
):
    """Every kind of record, in one database."""

    #: rows that no longer load (written by an older version), skipped wherever they are read
    unreadable: Unreadable
    #: several backends may write it: check state is merged in it, under each check's lock
    shared: bool
    #: what names it in logs and errors (a file, or a database URL without its password)
    where: str

    def open(self) -> None:
        """Connect and create the schema if needed (idempotent)."""

    def close(self) -> None: ...

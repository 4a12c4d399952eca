"""The backend's one way to its store.

Stores are synchronous (sqlite3, psycopg's blocking API); every call is a hop to a worker
thread. This service owns those hops: writes go one at a time (SQLite has one writer, and a
queue of writers in threads only adds contention), reads up to ``READERS`` at once, and the
completions of handler work, which arrive one workflow at a time, are written in batches by
:meth:`StoreService.run`, one transaction per batch. The backend's services take this
service, never the store itself.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from functools import partial
from typing import Any, TypeVar

import trio

from pipeline.core.cluster import Connection, Heartbeat
from pipeline.errors import StoreError
from pipeline.logs import get_logger
from pipeline.metrics import StoreMetrics
from pipeline.model import Check, Entity, Event
from pipeline.model.apikey import StoredKey
from pipeline.model.deadletter import DeadLetter
from pipeline.model.outbox import Completion, StoredJob
from pipeline.model.pipeline import Silenced
from pipeline.store.base import CheckKey, EventStore, Merge, TimelineQuery
from pipeline.store.rows import event_row

log = get_logger("store")

T = TypeVar("T")

#: Reads running at once (each thread has its own reader connection).
READERS = 4
#: Completions of handler work waiting to be written, at most.
COMPLETIONS_SIZE = 10_000
#: Completions written in one transaction, at most.
COMPLETIONS_BATCH = 1000
#: Seconds the first completion of a batch waits for others before they are written. Written
#: as they came, they made transactions of 3-5 rows under load (944 for 20,000 events, each
#: rewriting the outbox's same pages into the WAL); a crash can at most repeat the handlers
#: whose completion waited here, which at-least-once allows.
COMPLETIONS_LINGER = 0.05


class StoreService:
    def __init__(self, store: EventStore, metrics: StoreMetrics, *, readers: int = READERS) -> None:
        self.store = store
        self.metrics = metrics
        store.unreadable.count = lambda kind: metrics.unreadable.labels(kind).inc()
        self._writes = trio.CapacityLimiter(1)
        self._reads = trio.CapacityLimiter(readers)
        #: handler work done, for :meth:`run` to record; the handler runner holds a clone
        self.completions, self._completed = trio.open_memory_channel[Completion](COMPLETIONS_SIZE)

    async def _write(self, fn: Callable[..., T], *args: Any) -> T:
        return await trio.to_thread.run_sync(fn, *args, limiter=self._writes)

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        return await trio.to_thread.run_sync(fn, *args, limiter=self._reads)

    async def open(self) -> None:
        await self._write(self.store.open)
        self.metrics.outbox_jobs.set(await self._read(self.store.count_jobs))

    async def close(self) -> None:
        await self._write(self.store.close)

    async def probe(self) -> None:
        """One cheap read (the outbox's last row), for ``/health``. Cancelling the caller abandons
        the thread instead of waiting on a store that does not answer (its reader slot stays
        taken until the thread returns)."""
        await trio.to_thread.run_sync(self.store.last_job, limiter=self._reads, abandon_on_cancel=True)

    # -- events --------------------------------------------------------------------------------

    @property
    def shared(self) -> bool:
        """Several backends may write the store: check state is merged in it, under lock."""
        return self.store.shared

    async def write_batch(
        self, events: Sequence[Event], outbox: Sequence[Event] = (), *, merge: Merge | None = None
    ) -> list[int]:
        """Store ``events`` and their handler jobs in one transaction; the jobs' rows. ``merge``:
        see :meth:`pipeline.store.base.EventRecords.write_batch`."""
        if merge is None:
            # Packed here, on the trio thread: in the writer's thread the packing held the GIL
            # for a millisecond a batch while the trio thread, back from every write(2) to a
            # client, waited to take it (issue 19).
            packed = [event_row(event) for event in events if event.check is not None]
            rows = await self._write(partial(self.store.write_batch, rows=packed), events, outbox)
        else:
            rows = await self._write(partial(self.store.write_batch, merge=merge), events, outbox)
        self.metrics.outbox_jobs.inc(len(rows))
        return rows

    async def known_ids(self, ids: Collection[str]) -> set[str]:
        return await self._read(self.store.known_ids, ids)

    async def get_event(self, namespace: str, entity: str, check: str) -> Event | None:
        return await self._read(self.store.get_event, namespace, entity, check)

    async def list_events(self, namespace: str | None = None, entity: str | None = None) -> list[Event]:
        return await self._read(self.store.list_events, namespace, entity)

    async def latest_checks(self) -> dict[CheckKey, Check]:
        return await self._read(self.store.latest_checks)

    async def delete_event(self, namespace: str, entity: str, check: str) -> bool:
        return await self._write(self.store.delete_event, namespace, entity, check)

    async def count_log(self) -> int:
        return await self._read(self.store.count_log)

    async def due_checks(self, now: int, limit: int) -> list[CheckKey]:
        return await self._read(self.store.due_checks, now, limit)

    async def timeline(self, query: TimelineQuery) -> tuple[list[Event], str]:
        return await self._read(self.store.timeline, query)

    # -- the outbox ----------------------------------------------------------------------------

    async def put_jobs(self, events: Sequence[Event]) -> list[int]:
        rows = await self._write(self.store.put_jobs, events)
        self.metrics.outbox_jobs.inc(len(rows))
        return rows

    async def pending_jobs(self, after: int, limit: int, backend: str | None = None) -> list[StoredJob]:
        return await self._read(self.store.pending_jobs, after, limit, backend)

    async def claim_jobs(self, lease: float, limit: int) -> list[StoredJob]:
        return await self._write(self.store.claim_jobs, lease, limit)

    async def last_job(self) -> int:
        return await self._read(self.store.last_job)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Record completions of handler work, a batch per transaction, until every sender
        closed its end of :attr:`completions` (the backend does after the handlers stopped)."""
        task_status.started()
        async with self._completed:
            try:
                async for first in self._completed:
                    batch = [first]
                    try:
                        await self._gather(batch)
                    finally:  # taken from the channel: written, stop or not
                        with trio.CancelScope(shield=True):
                            await self._record(batch)
            finally:
                # Cancelled: what the handlers reported is written still (one bounded batch), so
                # that a stop does not make them run again after the next start.
                last = self._waiting()
                if last:
                    with trio.CancelScope(shield=True):
                        await self._record(last)

    async def _gather(self, batch: list[Completion]) -> None:
        """Add to ``batch`` what arrived within :data:`COMPLETIONS_LINGER` (a sleep, then what
        waits: cheaper than a wake-up per completion), up to a full batch."""
        await trio.sleep(COMPLETIONS_LINGER)
        batch.extend(self._waiting(COMPLETIONS_BATCH - len(batch)))

    def _waiting(self, limit: int = COMPLETIONS_BATCH) -> list[Completion]:
        batch: list[Completion] = []
        while len(batch) < limit:
            try:
                batch.append(self._completed.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel):
                break
        return batch

    async def _record(self, batch: list[Completion]) -> None:
        try:
            await self._write(self.store.complete, batch)
        except StoreError as exc:
            # The jobs stay in the outbox: a restart runs them again (at least once, not at most).
            self.metrics.failures.labels("complete").inc()
            log.error("handler work done but not recorded", completions=len(batch), error=exc)
            return
        self.metrics.outbox_jobs.dec(sum(1 for c in batch if c.workflow is None))

    # -- entities ------------------------------------------------------------------------------

    async def put_entity(self, entity: Entity) -> bool:
        return await self._write(self.store.put_entity, entity)

    async def add_entity(self, entity: Entity) -> bool:
        return await self._write(self.store.add_entity, entity)

    async def delete_entity(self, namespace: str, name: str) -> list[Event]:
        return await self._write(self.store.delete_entity, namespace, name)

    async def get_entity(self, namespace: str, name: str) -> Entity | None:
        return await self._read(self.store.get_entity, namespace, name)

    async def list_entities(self, namespace: str | None = None) -> list[Entity]:
        return await self._read(self.store.list_entities, namespace)

    # -- dead letters --------------------------------------------------------------------------

    async def put_dead_letter(self, letter: DeadLetter) -> None:
        await self._write(self.store.put_dead_letter, letter)

    async def delete_dead_letter(self, letter_id: str) -> bool:
        return await self._write(self.store.delete_dead_letter, letter_id)

    async def list_dead_letters(self) -> list[DeadLetter]:
        return await self._read(self.store.list_dead_letters)

    async def get_dead_letter(self, letter_id: str) -> DeadLetter | None:
        return await self._read(self.store.get_dead_letter, letter_id)

    # -- silences ------------------------------------------------------------------------------

    async def put_silence(self, entry: Silenced) -> None:
        await self._write(self.store.put_silence, entry)

    async def delete_silence(self, namespace: str, name: str) -> bool:
        return await self._write(self.store.delete_silence, namespace, name)

    async def seed_silences(self, entries: Sequence[tuple[str, Silenced]]) -> list[Silenced]:
        return await self._write(self.store.seed_silences, entries)

    async def list_silences(self) -> list[Silenced]:
        return await self._read(self.store.list_silences)

    # -- the backends sharing the store ------------------------------------------------------

    async def beat(self, backend: Heartbeat) -> list[Heartbeat]:
        return await self._write(self.store.beat, backend)

    async def leave(self, name: str) -> None:
        await self._write(self.store.leave, name)

    async def set_connections(self, agents: Sequence[Connection]) -> None:
        await self._write(self.store.set_connections, agents)

    async def connections(self, lease: float) -> list[tuple[str, str, str, list[str]]]:
        return await self._read(self.store.connections, lease)

    async def put_executions(self, requests: Sequence[tuple[str, bytes]]) -> None:
        await self._write(self.store.put_executions, requests)

    async def take_executions(self, limit: int) -> list[bytes]:
        return await self._write(self.store.take_executions, limit)

    async def revisions(self) -> dict[str, int]:
        return await self._read(self.store.revisions)

    # -- API keys and resources ----------------------------------------------------------------

    async def put_api_key(self, key: StoredKey) -> None:
        await self._write(self.store.put_api_key, key)

    async def delete_api_key(self, key_id: str) -> bool:
        return await self._write(self.store.delete_api_key, key_id)

    async def list_api_keys(self) -> list[StoredKey]:
        return await self._read(self.store.list_api_keys)

    async def put_resource(self, kind: str, namespace: str, name: str, document: bytes | None) -> None:
        await self._write(self.store.put_resource, kind, namespace, name, document)

    async def put_resources(self, changes: list[tuple[str, str, str, bytes | None]]) -> None:
        await self._write(self.store.put_resources, changes)

    async def forget_resource(self, kind: str, namespace: str, name: str) -> bool:
        return await self._write(self.store.forget_resource, kind, namespace, name)

    async def list_resources(self) -> list[tuple[str, str, str, bytes | None]]:
        return await self._read(self.store.list_resources)

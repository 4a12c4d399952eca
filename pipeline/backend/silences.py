"""The silences the backend holds: from the config files (created once) and, later, the API.

They live in the store; this keeps them in memory for the event processor, which asks which
apply to each event. A silence ends when its time is up (dropped the next time it is
consulted) or, with ``expire_on_resolve``, when an event it silenced resolves.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence

from pipeline.core.silencing import is_expired, silence, with_times
from pipeline.errors import StoreError
from pipeline.logs import get_logger
from pipeline.metrics import BackendMetrics
from pipeline.model import DEFAULT_NAMESPACE, Event
from pipeline.model.codec import encode
from pipeline.model.pipeline import Silenced
from pipeline.store.service import StoreService

log = get_logger("backend.silences")


def seed_key(entry: Silenced) -> str:
    """What identifies a silence of the config files: its whole definition."""
    definition = json.dumps(encode(entry), sort_keys=True)
    return hashlib.sha256(definition.encode()).hexdigest()


class Silences:
    def __init__(
        self,
        store: StoreService,
        metrics: BackendMetrics,
        configured: Sequence[Silenced] = (),
        *,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self._configured = list(configured)
        self._wall_clock = wall_clock
        self._entries: dict[str, dict[str, Silenced]] = {}
        self._ending: list[tuple[str, str, str]] = []  # (namespace, name, why), to delete from the store
        #: told when a silence is created or ends (the dashboard's live stream); must not wait
        self.watchers: list[Callable[[], None]] = []
        metrics.silences_active.set_function(lambda: sum(len(e) for e in self._entries.values()))

    async def load(self) -> None:
        await self._seed()
        for entry in await self.store.list_silences():
            self._remember(entry)
        log.info("silences loaded", count=sum(len(e) for e in self._entries.values()))

    async def _seed(self) -> list[Silenced]:
        """Create each silence of the config files never created before (once per definition)."""
        now = self._wall_clock()
        seeds = [(seed_key(entry), with_times(entry, now)) for entry in self._configured]
        created = await self.store.seed_silences(seeds)
        for entry in created:
            log.info("silence created from the config files", silence=entry.metadata.name,
                     namespace=entry.metadata.namespace, expire_at=entry.expire_at)  # fmt: skip
        return created

    async def follow_store(self) -> None:
        """Another backend sharing the store created or ended silences: hold the store's."""
        entries: dict[str, dict[str, Silenced]] = {}
        for entry in await self.store.list_silences():
            entries.setdefault(entry.metadata.namespace or DEFAULT_NAMESPACE, {})[entry.metadata.name] = entry
        if entries != self._entries:
            self._entries = entries
            self._changed()

    async def reload(self, configured: Sequence[Silenced]) -> None:
        """The config files were reloaded: silences they define for the first time are created; a
        silence removed from the files stays until it expires or is deleted, as one made through the API."""
        self._configured = list(configured)
        for entry in await self._seed():
            self._remember(entry)

    def _remember(self, entry: Silenced) -> None:
        self._entries.setdefault(entry.metadata.namespace or DEFAULT_NAMESPACE, {})[entry.metadata.name] = entry

    def list(self, namespace: str | None) -> list[Silenced]:
        """The silences in force in ``namespace`` (None: in every namespace)."""
        now = self._wall_clock()
        namespaces = [namespace] if namespace is not None else sorted(self._entries)
        entries = [self._entries.get(ns, {}) for ns in namespaces]
        return [each[name] for each in entries for name in sorted(each) if not is_expired(each[name], now)]

    async def put(self, entry: Silenced) -> Silenced:
        """Create or replace a silence (Sensu's defaults for begin and expire_at filled)."""
        entry = with_times(entry, self._wall_clock())
        namespace = entry.metadata.namespace or DEFAULT_NAMESPACE
        await self.store.put_silence(entry)
        self._entries.setdefault(namespace, {})[entry.metadata.name] = entry
        log.info("silence created", silence=entry.metadata.name, namespace=namespace, expire_at=entry.expire_at,
                 creator=entry.creator, reason=entry.reason)  # fmt: skip
        self._changed()
        return entry

    async def delete(self, namespace: str, name: str) -> bool:
        if self._entries.get(namespace, {}).pop(name, None) is None:
            return False
        await self.store.delete_silence(namespace, name)
        log.info("silence deleted", silence=name, namespace=namespace)
        self._changed()
        return True

    def _changed(self) -> None:
        for watcher in self.watchers:
            watcher()

    def apply(self, event: Event, now: float) -> None:
        """Set ``check.silenced`` and ``is_silenced`` (call after the check's state is merged), and
        end the ``expire_on_resolve`` silences a resolution ends, as Sensu Go does: they leave the
        list, so the resolution passes ``not_silenced``, while ``is_silenced`` stays true."""
        if event.check is None:
            return
        namespace = event.namespace or DEFAULT_NAMESPACE
        entries = self._entries.get(namespace, {})
        self._expire(namespace, entries, now)
        ended = silence(event, entries, now)
        if event.check.is_silenced:
            self.metrics.events_silenced.inc()
        self.resolved(namespace, ended)

    def _expire(self, namespace: str, entries: dict[str, Silenced], now: float) -> None:
        for name in [n for n, e in entries.items() if is_expired(e, now)]:
            del entries[name]
            self._ending.append((namespace, name, "expired"))

    def snapshot(self, now: float) -> dict[str, dict[str, Silenced]]:
        """The silences in force, by namespace, as a copy: for the merge a shared store runs in
        a worker thread (:meth:`apply` and the API change the live ones on trio's thread)."""
        for namespace, entries in self._entries.items():
            self._expire(namespace, entries, now)
        return {namespace: dict(entries) for namespace, entries in self._entries.items()}

    def resolved(self, namespace: str, names: Sequence[str]) -> None:
        """End the ``expire_on_resolve`` silences ``names``, which a resolution ended (deleted
        from the store by the next :meth:`end_pending`)."""
        entries = self._entries.get(namespace, {})
        for name in names:
            if entries.pop(name, None) is not None:
                self._ending.append((namespace, name, "resolved"))

    async def end_pending(self) -> None:
        """Delete from the store the silences that ended since the last call."""
        ending, self._ending = self._ending, []
        if ending:
            self._changed()
        for namespace, name, why in ending:
            try:
                await self.store.delete_silence(namespace, name)
            except StoreError as exc:
                log.error("ended silence not deleted", silence=name, namespace=namespace, error=exc)
                continue
            log.info("silence ended", silence=name, namespace=namespace, reason=why)

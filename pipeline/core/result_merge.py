"""Merging check results where the database serialises them (several backends on one store).

On one backend, the event processor keeps every check's latest result in memory and merges
each new result with it before the batch is written. When backends share a store, the latest
result may have been written by another backend a moment ago: the store then locks each
check of the batch, reads its latest result and calls a :class:`ResultMerge` for each check
event in batch order, inside the transaction that writes them. The merge is what the event
processor does on one backend (Sensu's history, occurrences and flapping, then the silences),
on a copy of the silences taken before the batch, since it runs in the store's worker thread.
A merge serves one attempt at one batch: a batch whose transaction fails is failed whole, and
its events come again (from the agent's spool or the client) to a new merge.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.core.silencing import silence
from pipeline.core.state import apply_result
from pipeline.model import DEFAULT_NAMESPACE, Check, Event
from pipeline.model.pipeline import Silenced


@dataclass(slots=True)
class ResultMerge:
    #: the silences in force, by namespace (a copy: resolutions remove from it what they end)
    silences: dict[str, dict[str, Silenced]] | None
    #: wall-clock seconds the batch is taken at
    now: float
    #: (namespace, silence name) of the ``expire_on_resolve`` silences a resolution ended
    ended: list[tuple[str, str]] = field(default_factory=list)
    #: events the silences silenced
    silenced: int = 0

    def __call__(self, event: Event, previous: Check | None) -> None:
        """Set ``event.check`` to its result merged with ``previous`` (the check's latest result,
        None for its first), silences applied."""
        assert event.check is not None, "only check events are merged"
        event.check = apply_result(event.check, previous)
        if self.silences is None:
            return
        namespace = event.namespace or DEFAULT_NAMESPACE
        entries = self.silences.get(namespace, {})
        for name in silence(event, entries, self.now):
            del entries[name]
            self.ended.append((namespace, name))
        if event.check.is_silenced:
            self.silenced += 1

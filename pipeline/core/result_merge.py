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
from pipeline.model import DEFAULT_NAMESPACE, Check, CheckHistory, Event
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
    #: by event id, the history the check's latest result must still have for the event to be
    #: stored: what the backend made it from (a failing keepalive, a ttl failure)
    expected: dict[str, list[CheckHistory]] = field(default_factory=dict)
    #: ids of the events dropped because a newer result overtook what they were made from
    superseded: set[str] = field(default_factory=set)

    def __call__(self, event: Event, previous: Check | None) -> bool:
        """Set ``event.check`` to its result merged with ``previous`` (the check's latest result,
        None for its first), silences applied; False (and nothing changed) when the event was
        made from a result ``previous`` no longer is."""
        assert event.check is not None, "only check events are merged"
        if not still_current(self.expected.get(event.id), previous):
            self.superseded.add(event.id)
            return False
        event.check = apply_result(event.check, previous)
        if self.silences is None:
            return True
        namespace = event.namespace or DEFAULT_NAMESPACE
        entries = self.silences.get(namespace, {})
        for name in silence(event, entries, self.now):
            del entries[name]
            self.ended.append((namespace, name))
        if event.check.is_silenced:
            self.silenced += 1
        return True


def still_current(expected: list[CheckHistory] | None, latest: Check | None) -> bool:
    """Whether ``latest`` is still the result an event was made from (whose history was
    ``expected``; None: the event expects nothing). Every result appends to the history, so the
    same history is the same result; a deleted check is not."""
    return expected is None or (latest is not None and latest.history == expected)

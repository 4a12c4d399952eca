"""The last events' traces (:mod:`pipeline.model.trace`), bounded: the oldest is dropped when a
new one comes to a full ring. Pure: the caller counts what was dropped."""

from __future__ import annotations

from collections import OrderedDict

from pipeline.model.trace import EventTrace

#: Traces kept: of the last 2,000 events that had a workflow (an event with no handler leaves none).
#: A trace of a few workflows is about 2 KB, so the ring holds a few megabytes at most.
TRACES_KEPT = 2000


class TraceRing:
    def __init__(self, capacity: int = TRACES_KEPT) -> None:
        if capacity < 1:
            raise ValueError(f"capacity: at least 1, got {capacity}")
        self.capacity = capacity
        self._traces: OrderedDict[str, EventTrace] = OrderedDict()

    def __len__(self) -> int:
        return len(self._traces)

    def add(self, trace: EventTrace) -> int:
        """Keep ``trace`` (replacing one of the same event); how many older traces it pushed out."""
        self._traces.pop(trace.event_id, None)
        self._traces[trace.event_id] = trace
        dropped = 0
        while len(self._traces) > self.capacity:
            self._traces.popitem(last=False)
            dropped += 1
        return dropped

    def get(self, event_id: str) -> EventTrace | None:
        return self._traces.get(event_id)

"""Keyed deadlines: when each of many things must next be looked at. Pure: no clock, no I/O.

A heap with lazy deletion: moving or cancelling a deadline is O(1) plus one stale heap entry,
and finding the due ones is O(log n) each, so one task can watch every agent's keepalive and
every check's ttl.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class Deadlines(Generic[K]):
    def __init__(self) -> None:
        self._at: dict[K, float] = {}
        self._heap: list[tuple[float, int, K]] = []
        self._order = itertools.count()  # keys need not be comparable

    def __len__(self) -> int:
        return len(self._at)

    def set(self, key: K, at: float) -> None:
        """Look at ``key`` at time ``at`` (replacing its previous deadline)."""
        self._at[key] = at
        heapq.heappush(self._heap, (at, next(self._order), key))

    def cancel(self, key: K) -> None:
        self._at.pop(key, None)

    def next_at(self) -> float | None:
        """The earliest deadline, or None when nothing is watched."""
        heap = self._heap
        while heap and self._at.get(heap[0][2]) != heap[0][0]:
            heapq.heappop(heap)  # moved or cancelled since it was pushed
        return heap[0][0] if heap else None

    def pop_due(self, now: float) -> list[K]:
        """Every key whose deadline is at or before ``now``, earliest first; they are no longer watched."""
        due = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            at, _, key = heapq.heappop(heap)
            if self._at.get(key) == at:
                del self._at[key]
                due.append(key)
        return due

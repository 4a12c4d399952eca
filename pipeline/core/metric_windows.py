"""A bounded recent window of each metric series an entity sends (StatsD and perfdata alike),
for the dashboard's latest values and sparklines. Pure: time is a parameter.

Bounds: each series keeps its last :data:`POINTS_PER_SERIES` points, and shows only those of
the last :data:`WINDOW_SECONDS`; an entity keeps at most :data:`SERIES_PER_ENTITY` series and
all entities together :data:`SERIES_TOTAL`. A new series past a bound pushes out the series
updated longest ago (of the entity, or of all), and :meth:`MetricWindows.add` says how many it
pushed out, for the caller to count. A series is two ``array`` rings (8-byte times and values):
about 1 KB with its key, so the whole window stays near 10 MB at its bound.
"""

from __future__ import annotations

import math
from array import array
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field

from pipeline.model import MetricPoint

POINTS_PER_SERIES = 60
WINDOW_SECONDS = 3600
SERIES_PER_ENTITY = 200
SERIES_TOTAL = 10_000

#: (namespace, entity)
EntityKey = tuple[str, str]
#: (metric name, sorted tags as (name, value) pairs)
SeriesKey = tuple[str, tuple[tuple[str, str], ...]]


@dataclass(slots=True)
class Series:
    """One series' last points, in a ring; ``source`` is the check that sent it ("" for metrics
    sent on their own, as StatsD flushes them)."""

    name: str
    tags: tuple[tuple[str, str], ...]
    source: str
    times: array[int] = field(default_factory=lambda: array("q"))
    values: array[float] = field(default_factory=lambda: array("d"))
    #: where the next point goes once the ring is full
    next: int = 0

    def add(self, timestamp: int, value: float, capacity: int) -> None:
        if len(self.times) < capacity:
            self.times.append(timestamp)
            self.values.append(value)
            return
        self.times[self.next] = timestamp
        self.values[self.next] = value
        self.next = (self.next + 1) % capacity

    def points(self, since: int) -> list[tuple[int, float]]:
        """The points at or after ``since``, oldest first."""
        return sorted((t, v) for t, v in zip(self.times, self.values, strict=True) if t >= since)


@dataclass(slots=True, frozen=True)
class SeriesView:
    name: str
    tags: tuple[tuple[str, str], ...]
    source: str
    points: list[tuple[int, float]]

    @property
    def latest(self) -> tuple[int, float]:
        return self.points[-1]

    @property
    def finite(self) -> list[tuple[int, float]]:
        """The points a chart can draw (NaN and infinities left out)."""
        return [(t, v) for t, v in self.points if math.isfinite(v)]


class MetricWindows:
    def __init__(
        self,
        *,
        points: int = POINTS_PER_SERIES,
        seconds: int = WINDOW_SECONDS,
        per_entity: int = SERIES_PER_ENTITY,
        total: int = SERIES_TOTAL,
    ) -> None:
        self.points, self.seconds, self.per_entity, self.total = points, seconds, per_entity, total
        #: every series, the one updated longest ago first
        self._all: OrderedDict[tuple[EntityKey, SeriesKey], Series] = OrderedDict()
        #: each entity's series keys, the one updated longest ago first
        self._entities: dict[EntityKey, OrderedDict[SeriesKey, None]] = {}

    def __len__(self) -> int:
        return len(self._all)

    def add(self, entity: EntityKey, source: str, points: Iterable[MetricPoint], default_time: int) -> int:
        """Take ``points`` of ``entity`` (a point without a timestamp is at ``default_time``);
        how many older series were pushed out to make room."""
        dropped = 0
        for point in points:
            key: SeriesKey = (point.name, tuple(sorted((t.name, t.value) for t in point.tags)))
            series = self._all.get((entity, key))
            if series is None:
                dropped += self._make_room(entity)
                series = self._all[(entity, key)] = Series(point.name, key[1], source)
                self._entities.setdefault(entity, OrderedDict())[key] = None
            else:
                self._all.move_to_end((entity, key))
                self._entities[entity].move_to_end(key)
            series.source = source
            series.add(point.timestamp or default_time, point.value, self.points)
        return dropped

    def _make_room(self, entity: EntityKey) -> int:
        """Push out what a new series of ``entity`` needs; how many series went."""
        own = self._entities.get(entity)
        if own is not None and len(own) >= self.per_entity:
            self._drop((entity, next(iter(own))))
            return 1
        if len(self._all) >= self.total:
            self._drop(next(iter(self._all)))
            return 1
        return 0

    def _drop(self, key: tuple[EntityKey, SeriesKey]) -> None:
        entity, series = key
        del self._all[key]
        own = self._entities[entity]
        del own[series]
        if not own:
            del self._entities[entity]

    def forget(self, entity: EntityKey) -> None:
        """The entity is gone: its series too."""
        for series in list(self._entities.get(entity, ())):
            self._drop((entity, series))

    def series(self, entity: EntityKey, now: float) -> list[SeriesView]:
        """The entity's series with a point in the window ending at ``now``, by name then tags."""
        since = int(now) - self.seconds
        views = []
        for key in self._entities.get(entity, ()):
            found = self._all[(entity, key)]
            points = found.points(since)
            if points:
                views.append(SeriesView(found.name, found.tags, found.source, points))
        return sorted(views, key=lambda v: (v.name, v.tags))

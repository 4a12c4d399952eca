"""StatsD aggregation and flush, with etsy StatsD's arithmetic and Graphite names. Pure.

Counters add ``value / rate``; timers keep every value while their ``count`` follows the
sample rate; gauges set, and a signed value is a delta when the gauge exists and is non-zero
(etsy's rule, 0 being falsy in JavaScript); sets count distinct values. A flush gives the
points etsy's Graphite backend writes with ``legacyNamespace: false`` and prefix ``stats``:
``stats.counters.<key>.rate`` / ``.count``, ``stats.timers.<key>.<stat>`` (percentile stats,
then std, upper, lower, count, count_ps, sum, sum_squares, mean, median, in etsy's order),
``stats.gauges.<key>``, ``stats.sets.<key>.count``. The arithmetic follows etsy's
``process_metrics.js`` step by step, so the floats are the same. Tags stay point tags.

Memory is bounded by ``max_keys``: the distinct keys (name and tags) held at once. A sample of
a new key beyond it is dropped and counted in ``dropped``, for the caller to report at each
flush; keys already held keep aggregating. Without ``delete_idle`` keys stay held after a flush
(zeroed, as etsy's), so they keep counting against the cap.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from pipeline.core.statsd.parse import PlainLine, Sample, Tags
from pipeline.model import MetricPoint, MetricTag

Key = tuple[str, Tags]


def js_round(value: float) -> int:
    """JavaScript's ``Math.round``: halves go up."""
    return math.floor(value + 0.5)


def percentile_suffix(pct: float) -> str:
    """etsy's name for a percentile: ``90``, ``99_9``, ``top10`` for -10."""
    text = str(int(pct)) if float(pct).is_integer() else repr(pct)
    return text.replace(".", "_", 1).replace("-", "top", 1)


#: Distinct keys an aggregator holds by default (see :class:`Aggregator`).
DEFAULT_MAX_KEYS = 100_000


@dataclass(slots=True)
class Aggregator:
    percentiles: Sequence[float] = (90.0,)
    delete_idle: bool = False
    max_keys: int = DEFAULT_MAX_KEYS
    #: samples of new keys dropped since the last flush because ``max_keys`` were held
    dropped: int = 0
    counters: dict[Key, float] = field(default_factory=dict)
    timers: dict[Key, list[float]] = field(default_factory=dict)
    timer_counts: dict[Key, float] = field(default_factory=dict)
    gauges: dict[Key, float] = field(default_factory=dict)
    sets: dict[Key, set[str]] = field(default_factory=dict)
    timestamps: dict[Key, int] = field(default_factory=dict)

    def add(self, samples: Iterable[Sample]) -> None:
        # The hot loop of the listener: one dict lookup per sample decides both "is the key
        # held" and its current value, so the key cap costs next to nothing.
        counters, timers, gauges, sets = self.counters, self.timers, self.gauges, self.sets
        for sample in samples:
            key = (sample.key, sample.tags)
            kind, value = sample.kind, sample.value
            if kind == "c":
                count = counters.get(key)
                if count is None and not self._admit():
                    continue
                counters[key] = (count or 0.0) + value * (1 / sample.rate)  # type: ignore[operator]
            elif kind == "ms":
                values = timers.get(key)
                if values is None:
                    if not self._admit():
                        continue
                    values = timers[key] = []
                values.append(value)  # type: ignore[arg-type]
                self.timer_counts[key] = self.timer_counts.get(key, 0.0) + 1 / sample.rate
            elif kind == "g":
                gauge = gauges.get(key)
                if gauge is None and not self._admit():
                    continue
                gauges[key] = gauge + value if sample.delta and gauge else value  # type: ignore[operator,assignment]
            else:
                members = sets.get(key)
                if members is None:
                    if not self._admit():
                        continue
                    members = sets[key] = set()
                members.add(str(value))
            if sample.timestamp is not None:
                self.timestamps[key] = sample.timestamp

    def add_plain(self, lines: Iterable[PlainLine]) -> None:
        """:meth:`add` for the lines :func:`~pipeline.core.statsd.parse.plain_lines` read, with
        the same arithmetic in the same order, without building a :class:`Sample` per line."""
        counters, timers, timer_counts = self.counters, self.timers, self.timer_counts
        for name, text, kind, rate in lines:
            key = (name, ())
            factor = 1 / float(rate) if rate else 1.0
            if kind == "c":
                count = counters.get(key)
                if count is None and not self._admit():
                    continue
                counters[key] = (count or 0.0) + float(text) * factor
            else:  # ms, h and d are all timers
                values = timers.get(key)
                if values is None:
                    if not self._admit():
                        continue
                    values = timers[key] = []
                values.append(float(text))
                timer_counts[key] = timer_counts.get(key, 0.0) + factor

    def _admit(self) -> bool:
        """Whether a new key may be held (counts the sample as dropped if not)."""
        if self.keys >= self.max_keys:
            self.dropped += 1
            return False
        return True

    @property
    def keys(self) -> int:
        """Keys held, of all kinds (a name held as two kinds counts twice)."""
        return len(self.counters) + len(self.timers) + len(self.gauges) + len(self.sets)

    def take_dropped(self) -> int:
        """Samples dropped by the key cap since the last call (the caller counts and logs them)."""
        dropped, self.dropped = self.dropped, 0
        return dropped

    def flush(self, now: int, interval: float) -> list[MetricPoint]:
        """The points of this interval, then the state reset as etsy resets it."""
        points: list[MetricPoint] = []

        def emit(name: str, value: float, key: Key) -> None:
            tags = [MetricTag(n, v) for n, v in key[1]]
            points.append(
                MetricPoint(name=name, value=float(value), timestamp=self.timestamps.get(key, now), tags=tags)
            )

        for key, count in self.counters.items():
            emit(f"stats.counters.{key[0]}.rate", count / interval, key)
            emit(f"stats.counters.{key[0]}.count", count, key)
        for key, values in self.timers.items():
            for stat, value in self._timer_stats(key, values, interval):
                emit(f"stats.timers.{key[0]}.{stat}", value, key)
        for key, gauge in self.gauges.items():
            emit(f"stats.gauges.{key[0]}", gauge, key)
        for key, members in self.sets.items():
            emit(f"stats.sets.{key[0]}.count", len(members), key)
        self._reset()
        return points

    def _timer_stats(self, key: Key, values: list[float], interval: float) -> list[tuple[str, float]]:
        count_by_rate = self.timer_counts.get(key, 0.0)
        if not values:
            return [("count", 0), ("count_ps", 0)]
        values = sorted(values)
        count = len(values)
        cumulative, squares = [values[0]], [values[0] * values[0]]
        for value in values[1:]:
            cumulative.append(value + cumulative[-1])
            squares.append(value * value + squares[-1])
        stats: list[tuple[str, float]] = []
        total, total_squares, mean, boundary = values[0], values[0] * values[0], values[0], values[-1]
        for pct in self.percentiles:
            in_threshold = count
            if count > 1:
                in_threshold = js_round(abs(pct) / 100 * count)
                if in_threshold == 0:
                    continue
                if pct > 0:
                    boundary = values[in_threshold - 1]
                    total, total_squares = cumulative[in_threshold - 1], squares[in_threshold - 1]
                else:
                    boundary = values[count - in_threshold]
                    before = count - in_threshold - 1
                    # JavaScript reads index -1 as undefined, and x - undefined is NaN
                    total = cumulative[-1] - cumulative[before] if before >= 0 else math.nan
                    total_squares = squares[-1] - squares[before] if before >= 0 else math.nan
                mean = total / in_threshold
            suffix = percentile_suffix(pct)
            stats += [
                (f"count_{suffix}", in_threshold),
                (f"mean_{suffix}", mean),
                (f"{'upper' if pct > 0 else 'lower'}_{suffix}", boundary),
                (f"sum_{suffix}", total),
                (f"sum_squares_{suffix}", total_squares),
            ]
        total, total_squares = cumulative[-1], squares[-1]
        mean = total / count
        spread = 0.0
        for value in values:
            spread += (value - mean) * (value - mean)
        middle = count // 2
        median = values[middle] if count % 2 else (values[middle - 1] + values[middle]) / 2
        return [
            *stats,
            ("std", math.sqrt(spread / count)),
            ("upper", values[-1]),
            ("lower", values[0]),
            ("count", count_by_rate),
            ("count_ps", count_by_rate / interval),
            ("sum", total),
            ("sum_squares", total_squares),
            ("mean", mean),
            ("median", median),
        ]

    def _reset(self) -> None:
        """etsy's clear after a flush (``deleteIdleStats`` drops keys instead of zeroing them)."""
        self.timestamps.clear()
        if self.delete_idle:
            self.counters.clear()
            self.timers.clear()
            self.timer_counts.clear()
            self.sets.clear()
            self.gauges.clear()
            return
        for key in self.counters:
            self.counters[key] = 0.0
        for key in self.timers:
            self.timers[key] = []
            self.timer_counts[key] = 0.0
        for key in self.sets:
            self.sets[key] = set()

"""Making an event keep to a maximum size (its msgpack encoding): cut outputs, split points. Pure.

The limit itself is :data:`pipeline.wire.limits.MAX_EVENT_BYTES`; callers pass it in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from pipeline.model import Event, MetricPoint
from pipeline.model.check import Hook

#: Annotation saying what :func:`fit_event` cut, so that a reader of the event knows.
FIT_ANNOTATION = "pipeline.io/event_size_fit"
#: msgpack bytes a point takes besides its strings, at most: the map and its four keys, a
#: float64, an int64 and the headers of the name and the tags array.
_POINT_FIXED = 60
#: The same for one tag: its map, two keys and the headers of two strings.
_TAG_FIXED = 27


def point_size_bound(point: MetricPoint) -> int:
    """The most bytes ``point`` takes in an event's msgpack encoding."""
    size = _POINT_FIXED + len(point.name.encode())
    for tag in point.tags:
        size += _TAG_FIXED + len(tag.name.encode()) + len(tag.value.encode())
    return size


def split_points(points: Sequence[MetricPoint], room: int) -> list[list[MetricPoint]]:
    """``points`` in order, in chunks of at most ``room`` bytes each (by :func:`point_size_bound`);
    a point alone over ``room`` still gets a chunk of its own (the caller decides its fate)."""
    chunks: list[list[MetricPoint]] = []
    current: list[MetricPoint] = []
    used = 0
    for point in points:
        size = point_size_bound(point)
        if current and used + size > room:
            chunks.append(current)
            current, used = [], 0
        current.append(point)
        used += size
    if current:
        chunks.append(current)
    return chunks


@dataclass(slots=True)
class Fit:
    """What :func:`fit_event` did."""

    size: int
    cut_bytes: int = 0
    dropped_points: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.cut_bytes or self.dropped_points)


def _outputs(event: Event) -> Iterator[tuple[str, Callable[[str], None]]]:
    """The check's output and each hook's, with a setter for each."""
    check = event.check
    if check is None:
        return

    def set_check(text: str) -> None:
        check.output = text

    yield check.output, set_check
    for hook in check.hooks:

        def set_hook(text: str, hook: Hook = hook) -> None:
            hook.output = text

        yield hook.output, set_hook


def _cut(text: str, excess: int, limit: int) -> tuple[str, int]:
    """``text`` shortened by at least ``excess`` bytes plus a note; returns it and the bytes cut."""
    raw = text.encode()
    note = f"\n[output truncated: {{}} bytes cut to keep the event within {limit} bytes]\n"
    keep = max(0, len(raw) - excess - len(note) - 20)
    kept = raw[:keep].decode(errors="ignore")
    cut = len(raw) - len(kept.encode())
    return kept + note.format(cut), cut


def fit_event(event: Event, limit: int) -> Fit:
    """Cut the longest outputs (the check's, then its hooks'), then metric points from the end,
    until ``event`` encodes to at most ``limit`` bytes, as far as those can make it."""
    fit = Fit(len(event.to_msgpack()))
    if fit.size <= limit:
        return fit
    event.metadata.annotations[FIT_ANNOTATION] = ""
    target = limit - 256  # room for what the annotation will say
    while fit.size > target:
        text, setter = max(_outputs(event), key=lambda item: len(item[0]), default=("", None))
        if setter is None or len(text) < 200:
            break
        shorter, cut = _cut(text, fit.size - target, limit)
        setter(shorter)
        fit.cut_bytes += cut
        fit.size = len(event.to_msgpack())
    while fit.size > target and event.metrics is not None and event.metrics.points:
        points, excess = event.metrics.points, fit.size - target
        keep = len(points)
        while keep and excess > 0:
            keep -= 1
            excess -= point_size_bound(points[keep])
        fit.dropped_points += len(points) - keep
        event.metrics.points = points[:keep]
        fit.size = len(event.to_msgpack())
    event.metadata.annotations[FIT_ANNOTATION] = (
        f"cut {fit.cut_bytes} bytes of output and {fit.dropped_points} metric points"
        f" to keep the event within {limit} bytes"
    )
    fit.size = len(event.to_msgpack())
    return fit

"""Pure helpers the event and entity pages show their facts with: status names, times, when an
incident started, and the points of an inline SVG sparkline."""

from __future__ import annotations

import math
from collections.abc import Sequence

from pipeline.backend.dashboard.shown import utc
from pipeline.model import Check

STATUS_NAMES = {0: "OK", 1: "WARNING", 2: "CRITICAL"}
#: A sparkline's drawing area, in SVG user units.
SPARK_WIDTH, SPARK_HEIGHT = 120, 24


def status_name(status: int) -> str:
    return STATUS_NAMES.get(status, "UNKNOWN")


def status_class(status: int) -> str:
    """The CSS class of a status: ``status-ok``, ``status-warning``, ``status-critical``, ``status-unknown``."""
    return f"status-{status_name(status).lower()}"


#: An absolute UTC time, to the second (empty for 0: never; a time past the calendar's end, which an
#: int64 ``executed`` or ``expire_at`` may be, as its number), as every page shows times.
when = utc


def ago(timestamp: float, now: float) -> str:
    """``3 min ago``, ``2 h ago``, ``in 5 s``; "never" for 0."""
    if not timestamp:
        return "never"
    seconds = now - timestamp
    text = duration(abs(seconds))
    return f"{text} ago" if seconds >= 0 else f"in {text}"


def duration(seconds: float) -> str:
    """The largest whole unit of ``seconds``: ``45 s``, ``12 min``, ``3 h``, ``2 d``."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit}"
    return f"{int(seconds)} s"


def incident_start(check: Check, fallback: int) -> int:
    """When the check's current run of non-OK results began: the first of the trailing non-OK
    results of its history (the one after ``last_ok`` when the whole history is non-OK, as far as
    it tells). An OK check has no incident: ``fallback`` (its event's time)."""
    if check.status == 0:
        return fallback
    start = check.executed or fallback
    for entry in reversed(check.history):
        if entry.status == 0:
            break
        start = entry.executed or start
    return start


def sparkline(points: Sequence[tuple[int, float]], width: int = SPARK_WIDTH, height: int = SPARK_HEIGHT) -> str:
    """The ``points`` attribute of an SVG polyline drawing ``points`` (time, value) in a
    ``width`` x ``height`` box, higher values higher; non-finite values are left out. A single
    point is a flat line; none is ""."""
    finite = [(t, v) for t, v in points if math.isfinite(v)]
    if not finite:
        return ""
    if len(finite) == 1:
        finite = [finite[0], (finite[0][0] + 1, finite[0][1])]
    t0, t1 = finite[0][0], finite[-1][0]
    low, high = min(v for _, v in finite), max(v for _, v in finite)
    span_t, span_v = (t1 - t0) or 1, (high - low) or 1.0
    pad = 1.0  # the stroke stays inside the box
    coords = []
    for i, (t, v) in enumerate(finite):
        x = (t - t0) / span_t * width if t1 != t0 else i / (len(finite) - 1) * width
        y = height - pad - (v - low) / span_v * (height - 2 * pad) if high != low else height / 2
        coords.append(f"{x:.1f},{y:.1f}")
    return " ".join(coords)


def short(value: float) -> str:
    """A metric value as people read it: ``12``, ``0.25``, ``1.5e+09``, ``NaN``."""
    if not math.isfinite(value):
        return str(value)
    return f"{value:.4g}" if abs(value) >= 1e6 or value != int(value) else str(int(value))

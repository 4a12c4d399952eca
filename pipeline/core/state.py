"""A check's state across results: history, occurrences, flapping. Pure: no I/O, no clock.

:func:`apply_result` merges one new result into the stored previous one exactly as Sensu Go
6.x does (``core/v2`` ``Check.MergeWith``, ``updateCheckState`` and ``totalStateChange``, then
the store's ``updateOccurrences``). For any sequence of results, ``history``, ``occurrences``,
``occurrences_watermark``, ``state``, ``total_state_change`` and ``last_ok`` hold the values
Sensu Go would store.

Where we knowingly differ:

- ``is_flapping_start`` and ``is_flapping_end`` make flap transitions detectable. Sensu Go
  derives them from a per-result ``history[].flapping`` flag that it never sets, so its
  ``is_flapping_start`` is true on *every* flapping event and its ``is_flapping_end`` is never
  true. Here ``is_flapping_start`` is true only on the result whose ``state`` became
  ``flapping`` (the previous state was not), and ``is_flapping_end`` only on the result whose
  ``state`` stopped being ``flapping``. A handler can page once per flap episode.
- History never holds more than :data:`HISTORY_LIMIT` results. Sensu Go drops one entry per
  merge, so a first event submitted with more than 20 history entries of its own stays over
  the limit for good (and its weights run past 1.18). Only such submitted histories differ.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from functools import lru_cache

from pipeline.model import FAILING, FLAPPING, PASSING, Check, CheckHistory
from pipeline.model.codec import INT64, replace, shallow_copy

#: The most occurrences a check counts (the field's int64): a first result carries its own count
#: in, and one more than int64 would be stored, then refused by every read of the check (Go wraps
#: it to a negative count; here it stays at the top).
_MOST = INT64[1]

#: How many results a check's history keeps, and how many flap detection needs.
HISTORY_LIMIT = 21

_FLOAT32 = struct.Struct("f")


def _f32(value: float) -> float:
    """``value`` rounded to the nearest float32, as Go's ``float32(...)`` conversion does."""
    rounded: float = _FLOAT32.unpack(_FLOAT32.pack(value))[0]
    return rounded


@lru_cache(maxsize=4096)  # few sums recur (a cycling check's are one or two): 3 struct round trips
def _go_percent(changes: float) -> int:
    """Go's ``uint32(float32(changes) / 20 * 100)``.

    Each float32 operation is done in float64 and rounded back to float32: for one division
    or multiplication of float32 operands that gives the correctly rounded float32 result.
    Plain float64 arithmetic would differ for some histories (9.4 gives 46 in Go, 47 in
    float64; 11.2 gives 56 in Go, 55 in float64).
    """
    return int(_f32(_f32(_f32(changes) / 20) * 100))


def total_state_change(history: Sequence[CheckHistory]) -> int:
    """Sensu Go's weighted percentage of status changes over the last 21 results (0 to 98).

    0 until there are 21 results. Each of the 20 transitions, oldest to newest, weighs 0.80,
    0.82, ... 1.18; any change of status counts (1 -> 2 too). The weights are accumulated in
    float64 by repeated addition, as Go does, so the sum carries Go's rounding errors.
    """
    if len(history) < HISTORY_LIMIT:
        return 0
    window = history[-HISTORY_LIMIT:]
    changes = 0.0
    weight = 0.80
    previous = window[0].status
    for entry in window[1:]:
        if entry.status != previous:
            changes += weight
        weight += 0.02
        previous = entry.status
    return _go_percent(changes)


def is_flapping(check: Check, total: int) -> bool:
    """Sensu Go's effective rule: both thresholds are set and ``total >= high_flap_threshold``.

    Sensu's hysteresis branch (stay flapping while ``total > low_flap_threshold``) reads the
    ``history[].flapping`` flag that is never set, so it never runs. Leaving it out keeps
    ``state`` identical to Sensu Go; ``low_flap_threshold`` only needs to be non-zero.
    """
    if check.low_flap_threshold == 0 or check.high_flap_threshold == 0:
        return False
    return total >= check.high_flap_threshold


def _update_occurrences(history: Sequence[CheckHistory], occurrences: int, watermark: int) -> tuple[int, int]:
    """Sensu Go's ``updateOccurrences``: the length of the current run, and its high mark.

    The watermark restarts at 1 only on the first non-OK result after an OK one, so it keeps
    the longest run of the incident across warning/critical changes and through the recovery.
    """
    repeated = len(history) > 1 and history[-1].status == history[-2].status
    occurrences = min(occurrences + 1, _MOST) if repeated else 1
    if len(history) > 1 and history[-1].status != 0 and history[-2].status == 0:
        watermark = 1
    elif occurrences > watermark:
        watermark = min(watermark + 1, _MOST)
    return occurrences, watermark


def _start_from(incoming: Check, previous: Check | None) -> Check:
    """What ``MergeWith`` merges with: the previous result, or for a first result the result itself.

    Sensu sets ``last_ok`` of a passing first result before merging it with itself, so it
    holds even if the result carried enough history to be flapping.
    """
    if previous is not None:
        return previous
    if incoming.status == 0:
        return replace(incoming, last_ok=incoming.executed)
    return incoming


def apply_result(incoming: Check, previous: Check | None) -> Check:
    """``incoming`` merged with the stored previous result of the same check (None for the first).

    Returns a new Check; neither argument is changed. The new ``history`` is a new list, whose
    older entries are shared with the base history (treat entries as values). Other fields are
    shared with ``incoming`` as in a shallow copy.
    """
    base = _start_from(incoming, previous)
    entry = CheckHistory(incoming.status, incoming.executed)
    history = [*base.history, entry][-HISTORY_LIMIT:]
    total = total_state_change(history)
    last_ok = base.last_ok
    if is_flapping(incoming, total):
        state = FLAPPING  # last_ok is not moved while flapping, as in Sensu Go
    elif incoming.status == 0:
        state, last_ok = PASSING, incoming.executed
    else:
        state = FAILING
    occurrences, watermark = _update_occurrences(history, base.occurrences, base.occurrences_watermark)
    was_flapping = previous is not None and previous.state == FLAPPING
    merged = shallow_copy(incoming)
    merged.history = history
    merged.total_state_change = total
    merged.state = state
    merged.last_ok = last_ok
    merged.occurrences = occurrences
    merged.occurrences_watermark = watermark
    merged.is_flapping_start = state == FLAPPING and not was_flapping
    merged.is_flapping_end = was_flapping and state != FLAPPING
    return merged

"""A check's state across results: history, occurrences, flapping. Pure: no I/O, no clock.

:func:`apply_result` merges one new result into the previous one exactly as Sensu Go 6.x
does it (``core/v2`` ``Check.MergeWith``, ``updateCheckState``, ``totalStateChange`` and the
store's ``updateOccurrences``), so ``history``, ``occurrences``, ``occurrences_watermark``,
``state``, ``total_state_change`` and ``last_ok`` match Sensu Go's values for any sequence.

Two deliberate differences, both documented in the README:

- Flapping transitions are detectable. Sensu Go's per-result ``flapping`` flag is never set,
  so its ``is_flapping_start`` fires on every flapping event and ``is_flapping_end`` never.
  Here ``check.is_flapping_start`` is true only on the result that made ``state`` become
  ``flapping``, and ``check.is_flapping_end`` only on the result that made it stop.
- History is always capped at the last 21 results. Sensu Go drops only one entry per merge,
  so an event submitted with more than 20 history entries of its own keeps them all there.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Sequence

from pipeline.model import FAILING, FLAPPING, PASSING, Check, CheckHistory

HISTORY_LIMIT = 21

_FLOAT32 = struct.Struct("f")


def _f32(value: float) -> float:
    """``value`` rounded to the nearest float32, as a Go ``float32(...)`` conversion does."""
    result: float = _FLOAT32.unpack(_FLOAT32.pack(value))[0]
    return result


def total_state_change(history: Sequence[CheckHistory]) -> int:
    """Sensu's weighted state change over 21 results, in percent (0 to 98).

    Transitions are weighted from 0.80 (oldest) to 1.18 (newest); any change of status counts.
    The last step is float32 arithmetic in Go, which changes the result for some histories,
    so it is reproduced here operation by operation.
    """
    if len(history) < HISTORY_LIMIT:
        return 0
    changes = 0.0
    weight = 0.80
    previous = history[0].status
    for entry in history[1:]:
        if entry.status != previous:
            changes += weight
        weight += 0.02
        previous = entry.status
    percent = _f32(_f32(_f32(changes) / 20) * 100)
    return int(percent)


def is_flapping(check: Check, total: int) -> bool:
    """Sensu Go's effective rule: both thresholds set and ``total >= high_flap_threshold``.

    Sensu's hysteresis branch (``total > low`` while already flapping) reads a flag that is
    never set, so it never applies; keeping it out keeps ``state`` identical to Sensu Go.
    """
    if check.low_flap_threshold == 0 or check.high_flap_threshold == 0:
        return False
    return total >= check.high_flap_threshold


def _occurrences(history: Sequence[CheckHistory], occurrences: int, watermark: int) -> tuple[int, int]:
    """Sensu Go's ``updateOccurrences``: the run length of the current status, and its high mark."""
    repeated = len(history) > 1 and history[-1].status == history[-2].status
    occurrences = occurrences + 1 if repeated else 1
    if len(history) > 1 and history[-1].status != 0 and history[-2].status == 0:
        watermark = 1
    elif occurrences > watermark:
        watermark += 1
    return occurrences, watermark


def apply_result(incoming: Check, previous: Check | None) -> Check:
    """``incoming`` merged with the previous result of the same check (None for the first).

    Returns a new Check; neither argument is changed.
    """
    check = dataclasses.replace(incoming)
    entry = CheckHistory(status=incoming.status, executed=incoming.executed)
    if previous is None:
        # Sensu merges a first result with itself: its own history, last_ok and counters.
        base_history, last_ok = list(incoming.history), incoming.last_ok
        occurrences, watermark = incoming.occurrences, incoming.occurrences_watermark
        if incoming.status == 0:
            last_ok = incoming.executed
        was_flapping = False
    else:
        base_history, last_ok = list(previous.history), previous.last_ok
        occurrences, watermark = previous.occurrences, previous.occurrences_watermark
        was_flapping = previous.state == FLAPPING
    check.history = [*base_history, entry][-HISTORY_LIMIT:]
    check.total_state_change = total_state_change(check.history)
    if is_flapping(check, check.total_state_change):
        check.state = FLAPPING  # last_ok is not updated while flapping
    elif check.status == 0:
        check.state = PASSING
        last_ok = check.executed
    else:
        check.state = FAILING
    check.last_ok = last_ok
    check.occurrences, check.occurrences_watermark = _occurrences(check.history, occurrences, watermark)
    check.is_flapping_start = check.state == FLAPPING and not was_flapping
    check.is_flapping_end = was_flapping and check.state != FLAPPING
    return check

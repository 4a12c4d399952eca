"""The garbage collector's settings for a long-running daemon.

A backend allocates a few dozen objects per check result (its decoded event, state, job); with
CPython's default collection threshold (700 allocations) that is a collection every 20 or so
results, and each full collection walks every object loaded at start (the modules, the
configuration: several hundred thousand). Measured with bench/transport.py, the collector took
a fifth of the backend's CPU per result. :func:`settle` is called once a daemon has started.
"""

from __future__ import annotations

import gc

#: Allocations between two collections of the youngest generation (CPython's default: 700).
YOUNG_THRESHOLD = 20_000


def settle() -> None:
    """Collect once, then keep what the start left alive out of every later collection (it lives
    as long as the process), and collect the youngest generation less often: each collection
    of it costs about the same whatever its size, so fewer of them cost less."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)

"""Every process a command starts, found and killed when the command's execution ends.

Each execution (check, hook, pipe mutator, pipe handler) runs in a :class:`Scope`: a cgroup
of its own where one is writable (:mod:`.cgroup`), else the process group plus a ``/proc``
scan (:mod:`.proctree`). The mechanism is chosen once per process (:mod:`.detect`), logged
once, and exported as ``pipeline_process_containment{mechanism=...}``.
"""

from __future__ import annotations

import atexit
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from pipeline.containment.base import EXECUTION_ID_VARIABLE, Containment, Scope
from pipeline.containment.detect import MECHANISM_VARIABLE, PARENT_VARIABLE, detect

__all__ = [
    "EXECUTION_ID_VARIABLE",
    "MECHANISM_VARIABLE",
    "PARENT_VARIABLE",
    "Containment",
    "ContainmentCollector",
    "Scope",
    "current",
    "detect",
    "set_current",
]

_current: Containment | None = None


def current() -> Containment:
    """This process's mechanism, detected (and logged) on first use; daemons call it at start."""
    global _current
    if _current is None:
        _current = detect()
        atexit.register(_current.shutdown)
    return _current


def set_current(containment: Containment | None) -> Containment | None:
    """Use ``containment`` from now on (tests; None detects again); returns the previous one."""
    global _current
    previous, _current = _current, containment
    return previous


class ContainmentCollector(Collector):
    """The mechanism in use and what it had to do, read at scrape time."""

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        info = GaugeMetricFamily(
            "pipeline_process_containment",
            "How command processes are contained (1 for the one in use)",
            labels=["mechanism"],
        )
        leftovers = CounterMetricFamily(
            "pipeline_process_leftovers_killed", "Processes killed because their command's execution had ended"
        )
        errors = CounterMetricFamily(
            "pipeline_process_containment_errors", "Containment operations that failed", labels=["operation"]
        )
        if _current is not None:
            info.add_metric([_current.mechanism], 1)
            leftovers.add_metric([], _current.stats.leftovers_killed)
            for operation, count in sorted(_current.stats.errors.items()):
                errors.add_metric([operation], count)
        yield info
        yield leftovers
        yield errors

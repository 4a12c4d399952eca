"""Checks the backend schedules (round robin, proxy requests): who runs what, and when. Pure.

As in Sensu Go, a ``round_robin`` check runs on one agent of its subscriptions at a time, and a
check with ``proxy_requests`` runs once per matching entity; both need to know every connected
agent or every entity, which only the backend does, so the backend schedules them and asks
agents to run them (agents schedule every other check themselves, and keep running those
while cut off from the backend).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from pipeline.model import CheckConfig

#: Sensu Go's ``DefaultSplayCoverage``: percent of the interval proxy executions are spread over.
DEFAULT_SPLAY_COVERAGE = 90


def backend_scheduled(check: CheckConfig) -> bool:
    """Whether the backend, not each agent, schedules ``check``."""
    return bool(check.round_robin or check.proxy_requests is not None)


def next_agents(connected: Sequence[str], last: str | None, count: int = 1) -> list[str]:
    """The ``count`` agents whose turn it is, out of the ``connected`` agent names, after ``last``
    (the agent that ran last, connected or not): the names in sorted order, starting with the
    first one after ``last`` and wrapping round. An agent that joins takes its place in the ring
    and one that leaves gives its turns to the others, without anyone running twice in a row
    while another waits. Empty when none is connected; names repeat when ``count`` is larger."""
    ring = sorted(set(connected))
    if not ring or count <= 0:
        return []
    start = 0 if last is None else bisect.bisect_right(ring, last) % len(ring)
    return [ring[(start + i) % len(ring)] for i in range(count)]


def splay_step(window: float, coverage: int, executions: int) -> float:
    """Seconds between two proxy executions of one scheduled run: ``executions`` spread over
    ``coverage`` percent of the ``window`` until the next run (Sensu Go's
    ``calculateSplayInterval``). Zero coverage reads as Sensu Go's default of 90."""
    if executions <= 0 or window <= 0:
        return 0.0
    percent = coverage or DEFAULT_SPLAY_COVERAGE
    return window * percent / 100.0 / executions

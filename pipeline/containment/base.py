"""What every containment mechanism offers: one scope per execution that can kill all it holds."""

from __future__ import annotations

import os
import secrets
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import count

from pipeline.logs import get_logger

log = get_logger("containment")

#: Set in the environment of every command; children inherit it, which is how the
#: process-tree fallback finds a child that left the process group and lost its parent.
EXECUTION_ID_VARIABLE = "PIPELINE_EXECUTION_ID"

_sequence = count(1)
#: Drawn once: a random draw per execution was a getrandom call on every spawn.
_DAEMON_TOKEN = secrets.token_hex(4)


def new_execution_id() -> str:
    """Unique among daemons on a host: our pid, a sequence, and a random part drawn at start
    (which tells this daemon from an earlier one that had the same pid)."""
    return f"{os.getpid()}-{next(_sequence)}-{_DAEMON_TOKEN}"


@dataclass(slots=True)
class ContainmentStats:
    """What the mechanism did, read by the metrics collector at scrape time."""

    #: Processes still running when their execution ended (timeout or the leader's exit).
    leftovers_killed: int = 0
    #: Failures by operation (``create``, ``kill``, ``remove``): the execution went on regardless.
    errors: dict[str, int] = field(default_factory=dict)

    def failed(self, operation: str, **fields: object) -> None:
        """Count a failure; log the first of each operation (a stuck host would log every run)."""
        self.errors[operation] = self.errors.get(operation, 0) + 1
        if self.errors[operation] == 1:
            log.warning("process containment failed", operation=operation, **fields)


class Scope(ABC):
    """The processes of one execution: the command's shell and everything it starts."""

    def __init__(self, stats: ContainmentStats, execution_id: str) -> None:
        self.stats = stats
        self.execution_id = execution_id
        self.leader = 0
        self._counted: set[int] = set()

    def argv(self, command: str) -> list[str]:
        """How to start ``command`` so that it is inside this scope before it runs."""
        return ["/bin/sh", "-c", command]

    def environment(self, env: Mapping[str, str] | None) -> dict[str, str]:
        merged = dict(os.environ if env is None else env)
        merged[EXECUTION_ID_VARIABLE] = self.execution_id
        return merged

    def started(self, pid: int) -> None:
        """Called with the shell's pid right after it was spawned."""
        self.leader = pid

    @abstractmethod
    def signal_all(self, sig: int) -> None:
        """Send ``sig`` to every process of the scope (SIGTERM on timeout, before the kill)."""

    @abstractmethod
    async def kill_all(self) -> None:
        """SIGKILL every process of the scope, counting those that are not the leader."""

    def left_nothing(self) -> bool:
        """Whether the reaped shell certainly left nothing behind, found cheaply and without
        blocking (then :meth:`leader_exited` is not called); may be called from a worker thread,
        and must touch nothing another execution uses. False where it cannot tell."""
        return False

    async def leader_exited(self) -> None:
        """The shell was reaped: what it left behind goes too (which also ends the output)."""
        await self.kill_all()

    async def close(self) -> None:
        """Kill what is left and release the scope; call once, after the leader was reaped."""
        await self.kill_all()

    def release_now(self) -> bool:
        """Release the scope at once when :meth:`leader_exited` left nothing to kill or wait
        for (then :meth:`close` is not called); False when close() must be awaited."""
        return False

    def _count_leftovers(self, pids: set[int]) -> None:
        """Count each once: a process killed a moment ago may still be listed by the next kill."""
        new = pids - self._counted - {self.leader}
        self.stats.leftovers_killed += len(new)
        self._counted |= new


class Containment(ABC):
    """A mechanism, chosen once per process (see :func:`pipeline.containment.current`)."""

    #: The metric label and log field: ``cgroup2``, ``cgroup1-freezer``, ``cgroup1-pids``, ``process-tree``.
    mechanism: str
    #: Where: the cgroup directory holding the executions' cgroups, or ``/proc``.
    location: str

    def __init__(self) -> None:
        self.stats = ContainmentStats()

    @abstractmethod
    def open_scope(self) -> Scope:
        """A new scope for one execution."""

    def shutdown(self) -> None:  # noqa: B027 (nothing to release for most mechanisms)
        """Release what the mechanism holds for this daemon (at exit)."""


def send_signal(pid: int, sig: int) -> bool:
    """``kill(pid, sig)``; False when the process is already gone."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True

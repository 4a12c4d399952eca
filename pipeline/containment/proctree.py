"""The fallback where no cgroup is writable: the process group plus a scan of ``/proc``.

A process belongs to an execution when, among the processes started since the execution
began, it is in the shell's process group or session, carries the execution's
``PIPELINE_EXECUTION_ID`` in its environment (inherited, so a ``setsid`` child whose parent
exited is still found), or descends from such a process. The members are stopped with
SIGSTOP, the scan repeated until no new member appears (a stopped process cannot fork), and
then all are killed. What escapes: a process that both cleared its environment (``env -i``,
``sudo``) and lost its parent before the scan, or one started through another service
(``systemctl start``), which is not ours to kill anyway.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

from pipeline.containment.base import EXECUTION_ID_VARIABLE, Containment, ContainmentStats, Scope, new_execution_id

#: Stop-and-rescan rounds before the kill; more only if the command forks faster than we scan.
STOP_ROUNDS = 20
_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(slots=True, frozen=True)
class ProcInfo:
    pid: int
    ppid: int
    pgrp: int
    session: int
    #: Start time in clock ticks since boot (tells a reused pid from the process we scanned).
    start: int


def boot_ticks() -> int:
    """Now, in the unit and clock of ``/proc/<pid>/stat``'s start time."""
    return int(time.clock_gettime(time.CLOCK_BOOTTIME) * _TICKS)


def _read(path: str) -> bytes:
    """The whole of a /proc file; os-level calls, a third of what ``open()`` costs per file."""
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_stat(pid: int) -> ProcInfo | None:
    """The process's parent, group, session and start time; None if it is gone or a zombie."""
    try:
        data = _read(f"/proc/{pid}/stat")
    except OSError:
        return None
    # The command name may hold spaces and parentheses: the fields start after the last ')'.
    fields = data[data.rindex(b")") + 2 :].split()
    if fields[0] in (b"Z", b"X"):
        return None  # exited: nothing to kill, its parent reaps it
    return ProcInfo(pid, int(fields[1]), int(fields[2]), int(fields[3]), int(fields[19]))


def _has_marker(pid: int, marker: bytes) -> bool:
    try:
        return marker in _read(f"/proc/{pid}/environ").split(b"\0")
    except OSError:
        return False


def _newer(first: int) -> Callable[[int], bool]:
    """Whether a pid may have been allocated at or after ``first``: pids are handed out in
    increasing order and wrap around at pid_max, so only those need their stat read."""
    try:
        last = int(_read("/proc/sys/kernel/ns_last_pid"))
    except (OSError, ValueError):
        return lambda pid: True
    if last >= first:
        return lambda pid: first <= pid <= last
    return lambda pid: pid >= first or pid <= last  # wrapped since


def scan(since: int, first_pid: int = 0) -> list[ProcInfo]:
    """Every live process started at or after ``since`` (boot ticks), with a pid from ``first_pid`` on."""
    newer = _newer(first_pid) if first_pid else (lambda pid: True)
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or not newer(pid := int(name)):
            continue
        if (info := read_stat(pid)) is not None and info.start >= since:
            found.append(info)
    return found


def members(candidates: list[ProcInfo], leader: int, marker: bytes) -> dict[int, ProcInfo]:
    """The candidates that belong to the execution led by ``leader``."""
    own = os.getpid()
    by_pid = {info.pid: info for info in candidates if info.pid != own}
    roots = {
        pid
        for pid, info in by_pid.items()
        if pid == leader or leader in (info.pgrp, info.session) or _has_marker(pid, marker)
    }
    children: dict[int, list[int]] = {}
    for info in by_pid.values():
        children.setdefault(info.ppid, []).append(info.pid)
    found, todo = set(), [*roots, leader]
    while todo:
        pid = todo.pop()
        for child in children.get(pid, ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return {pid: by_pid[pid] for pid in found | roots}


def _signal_exact(info: ProcInfo, sig: int) -> None:
    """Signal ``info.pid`` only if it is still the process we scanned (not a reused pid)."""
    try:
        fd = os.pidfd_open(info.pid)
    except OSError:
        return  # gone
    try:
        current = read_stat(info.pid)
        if current is not None and current.start == info.start:
            signal.pidfd_send_signal(fd, sig)
    except ProcessLookupError:
        pass
    finally:
        os.close(fd)


class ProcessTreeScope(Scope):
    def __init__(self, stats: ContainmentStats, execution_id: str) -> None:
        super().__init__(stats, execution_id)
        self.marker = f"{EXECUTION_ID_VARIABLE}={execution_id}".encode()
        # One tick earlier: the start time is rounded down to a tick.
        self.since = boot_ticks() - 1
        self.killed = False

    def _members(self) -> dict[int, ProcInfo]:
        # Everything of this execution was forked after its shell: its pid is the lower bound.
        return members(scan(self.since, self.leader), self.leader, self.marker)

    def signal_all(self, sig: int) -> None:
        for info in self._members().values():
            _signal_exact(info, sig)

    async def kill_all(self) -> None:
        stopped: dict[int, ProcInfo] = {}
        for _ in range(STOP_ROUNDS):
            new = {pid: info for pid, info in self._members().items() if pid not in stopped}
            if not new:
                break
            for info in new.values():
                _signal_exact(info, signal.SIGSTOP)
            stopped.update(new)
        for info in stopped.values():
            _signal_exact(info, signal.SIGKILL)
        self._count_leftovers(set(stopped))
        self.killed = True

    def release_now(self) -> bool:
        return self.killed  # nothing else to release

    async def close(self) -> None:
        # A finished kill_all left nothing to find: each scan costs a read of /proc.
        if not self.killed:
            await self.kill_all()


class ProcessTree(Containment):
    """Process group plus ``/proc`` scan; used where no cgroup hierarchy is writable."""

    mechanism = "process-tree"
    location = "/proc"

    def open_scope(self) -> Scope:
        return ProcessTreeScope(self.stats, new_execution_id())

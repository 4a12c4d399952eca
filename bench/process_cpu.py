"""CPU time of a process and of the processes it started: a daemon's cost is its tree's (the
backend's store writer, Icinga 2's own processes)."""

from __future__ import annotations

import os
from pathlib import Path


def tree_cpu(root: int) -> float:
    """CPU seconds (user + system) of ``root`` and every descendant alive now."""
    ticks = 0
    for pid in _tree(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except FileNotFoundError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / _CLOCK_TICKS


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _tree(root: int) -> list[int]:
    pids, children = [root], dict[int, list[int]]()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    for pid in pids:
        pids.extend(children.get(pid, []))
    return pids

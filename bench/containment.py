"""What containing a command costs: run_command with each mechanism against no containment at all.

Each mechanism runs the same commands through :func:`pipeline.process.run_command`, back to
back and 16 at once (the backend's process limit): ``true`` (nothing left behind) and
``sleep 600 & exit 0`` (one leftover to find and kill; not run without containment, where it
would stay). The peer, ``none``, is run_command with a scope that does nothing: the spawn as
it was before containment (process group, no cgroup, no scan). Reported: executions per
second and microseconds per execution; the process-tree fallback's cost grows with the number
of processes on the host, printed with the figures. Mechanisms this host cannot use are skipped.

Usage: python -m bench.containment [--runs N]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import trio

from pipeline.containment import Containment, Scope, set_current
from pipeline.containment.base import new_execution_id
from pipeline.containment.cgroup import Cgroup
from pipeline.containment.detect import candidates
from pipeline.containment.proctree import ProcessTree
from pipeline.errors import ContainmentError
from pipeline.process import run_command

CONCURRENCY = 16


class _NoScope(Scope):
    def signal_all(self, sig: int) -> None:
        pass

    async def kill_all(self) -> None:
        pass


class NoContainment(Containment):
    """The peer: nothing but the process group that run_command always makes."""

    mechanism = "none"
    location = "-"

    def open_scope(self) -> Scope:
        return _NoScope(self.stats, new_execution_id())


def mechanisms() -> list[Containment]:
    found: list[Containment] = [NoContainment()]
    bases = dict(candidates(Path("/proc/self/mountinfo").read_text(), Path("/proc/self/cgroup").read_text(), None))
    for mechanism, base in bases.items():
        try:
            found.append(Cgroup.create(mechanism, base))
        except (OSError, ContainmentError) as exc:
            print(f"{mechanism}: skipped ({exc})")
    found.append(ProcessTree())
    return found


async def timed(containment: Containment, command: str, runs: int, concurrency: int) -> float:
    remaining = iter(range(runs))

    async def worker() -> None:
        for _ in remaining:
            await run_command(command)

    previous = set_current(containment)
    try:
        started = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(concurrency):
                nursery.start_soon(worker)
        return time.perf_counter() - started
    finally:
        set_current(previous)


async def main(runs: int) -> None:
    processes = sum(1 for name in os.listdir("/proc") if name.isdigit())
    print(f"{runs} runs each; {processes} processes on this host")
    print(f"{'mechanism':<16} {'command':<20} {'conc':>4} {'runs/s':>8} {'us/run':>8} {'vs none':>8}")
    baseline: dict[tuple[str, int], float] = {}
    for containment in mechanisms():
        for command in ("true", "sleep 600 & exit 0"):
            if containment.mechanism == "none" and command != "true":
                continue
            for concurrency in (1, CONCURRENCY):
                await timed(containment, command, 20, concurrency)  # warm up
                seconds = await timed(containment, command, runs, concurrency)
                rate = runs / seconds
                base = baseline.setdefault(("true", concurrency), rate)
                print(
                    f"{containment.mechanism:<16} {command:<20} {concurrency:>4} {rate:>8.0f} "
                    f"{seconds / runs * 1e6:>8.0f} {rate / base:>8.2f}  load {os.getloadavg()[0]:.1f}"
                )
        containment.shutdown()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    trio.run(main, parser.parse_args().runs)

"""A cgroup per execution, on cgroup v2 or on v1's freezer or pids controller.

The daemon owns one directory (``pipeline-<pid>``) under its own cgroup or a configured
parent; each execution gets a child of it. The command's shell writes itself into the child's
``cgroup.procs`` before it runs the command (a prologue in the ``sh -c`` string), so nothing
the command starts can be outside: no race with a fork, and no Python ``preexec_fn`` in the
forked child (unsafe in a daemon with threads, and it costs subprocess's vfork fast path).
Killing: v2 writes ``cgroup.kill``, or freezes, SIGKILLs each pid and thaws; v1 freezer
freezes, SIGKILLs, thaws; v1 pids sets ``pids.max`` to 0 (no more forks) and SIGKILLs until
empty. Then the directory is removed.

A ``mkdir`` of a cgroup costs the kernel about 200 us, more than the rest of an execution's
bookkeeping: while other executions are running, a cgroup that ended empty without a kill
(the common case) is kept for the next execution instead of being removed, and the idle ones
are removed as soon as nothing runs, so an idle daemon holds no cgroup but its own.

The control files are read and written from the trio thread: they are kernel pseudo-files
answered in microseconds, cheaper than a thread hop. An execution that leaves nothing behind
(most) costs one ``pread`` of its cgroup's ``cgroup.procs``, kept open while the cgroup is
kept: empty once the shell was reaped means no kill and no wait.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import trio

from pipeline.containment.base import Containment, Scope, new_execution_id, send_signal
from pipeline.containment.proctree import ProcessTreeScope
from pipeline.errors import ContainmentError

#: How long the processes of a killed cgroup may take to be gone before we give up on its rmdir.
EMPTY_DEADLINE = 5.0
#: A directory whose removal failed is retried at the next execution's end, at most this many at once.
STALE_RETRIES = 16

CGROUP2 = "cgroup2"
FREEZER = "cgroup1-freezer"
PIDS = "cgroup1-pids"


#: Empty cgroups kept for reuse while executions run (above this, an ended one is removed).
MAX_IDLE = 64


def read_pids(path: Path) -> set[int]:
    # os-level calls: a third of what Path.read_text costs, and this runs at every execution's end.
    try:
        fd = os.open(path / "cgroup.procs", os.O_RDONLY)
    except FileNotFoundError:
        return set()
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return {int(line) for line in b"".join(chunks).split()}


def write(path: Path, value: str) -> None:
    path.write_text(value)


async def wait_until(predicate: Callable[[], bool], deadline: float) -> bool:
    """Poll ``predicate()`` with a short growing delay; the kernel gives no event we can await cheaply."""
    delay = 0.0002
    with trio.move_on_after(deadline):
        while not predicate():
            await trio.sleep(delay)
            delay = min(delay * 2, 0.02)
        return True
    return False


@dataclass(slots=True, eq=False)
class Slot:
    """One execution cgroup, which may serve several executions in turn (see MAX_IDLE)."""

    path: Path
    #: The shell's first command, made once per cgroup (a path join and a quote per execution
    #: cost more than the check below).
    prologue: str
    #: Whether ``cgroup.procs`` may be kept open and read again (cgroup v2 only, see empty()).
    reread: bool
    #: ``cgroup.procs``, opened at the first check and kept until the cgroup is removed: one
    #: pread per execution instead of an open, a read and a close.
    procs: int = -1

    @classmethod
    def at(cls, path: Path, mechanism: str) -> Slot:
        prologue = f"echo 0 >{shlex.quote(str(path / 'cgroup.procs'))} || exit 126; "
        return cls(path, prologue, reread=mechanism == CGROUP2)

    def empty(self) -> bool:
        """Whether nothing is in the cgroup now."""
        if not self.reread:
            # v1 keeps the list an open file read first for a second or so (the kernel's
            # pidlist cache): a read through a kept descriptor could be stale. A new open is not.
            return not read_pids(self.path)
        if self.procs < 0:
            self.procs = os.open(self.path / "cgroup.procs", os.O_RDONLY | os.O_CLOEXEC)
        # v2 lists the cgroup afresh at each read from offset 0.
        return not os.pread(self.procs, 65536, 0)

    def close(self) -> None:
        if self.procs >= 0:
            os.close(self.procs)
            self.procs = -1


class CgroupScope(Scope):
    def __init__(self, owner: Cgroup, slot: Slot, execution_id: str) -> None:
        super().__init__(owner.stats, execution_id)
        self.owner = owner
        self.slot = slot
        self.path = slot.path
        #: Found empty after the shell was reaped: nothing of the execution is left, and
        #: nothing can join a cgroup by itself, so there is nothing to kill or wait for.
        self.emptied = False

    def argv(self, command: str) -> list[str]:
        # Same line as the command, so the shell's line numbers in its errors are unchanged.
        return ["/bin/sh", "-c", self.slot.prologue + command]

    def signal_all(self, sig: int) -> None:
        for pid in read_pids(self.path):
            send_signal(pid, sig)

    async def kill_all(self) -> None:
        pids = read_pids(self.path)
        if not pids:
            return
        self._count_leftovers(pids)
        try:
            await self.owner.kill(self.path)
        except OSError as exc:
            self.stats.failed("kill", cgroup=str(self.path), error=exc)
            for pid in read_pids(self.path):
                send_signal(pid, signal.SIGKILL)

    def left_nothing(self) -> bool:
        # The slot is this execution's alone while it runs: a worker thread may read it.
        try:
            self.emptied = self.slot.empty()
        except OSError:  # the kill path reads it again, and copes
            self.emptied = False
        return self.emptied

    async def leader_exited(self) -> None:
        if not self.left_nothing():
            await self.kill_all()

    def release_now(self) -> bool:
        if self.emptied:
            self.owner.release(self.slot, reusable=True)
        return self.emptied

    async def close(self) -> None:
        if self.emptied:
            self.owner.release(self.slot, reusable=True)
            return
        await self.kill_all()
        await wait_until(lambda: not read_pids(self.path), EMPTY_DEADLINE)
        self.owner.release(self.slot, reusable=False)


class Cgroup(Containment):
    """Executions in child cgroups of ``parent`` (a directory this daemon created and owns)."""

    def __init__(self, mechanism: str, parent: Path) -> None:
        super().__init__()
        self.mechanism = mechanism
        self.parent = parent
        self.location = str(parent)
        self.stale: list[Path] = []
        #: Empty cgroups of ended executions, kept for the next ones while any runs.
        self.idle: list[Slot] = []
        self.running = 0
        self._names = itertools.count(1)

    @classmethod
    def create(cls, mechanism: str, base: Path) -> Cgroup:
        """Make ``base/pipeline-<pid>``, clean up after dead daemons, and prove a process can join."""
        sweep(base)
        parent = base / f"pipeline-{os.getpid()}"
        parent.mkdir(exist_ok=True)
        for child in [p for p in parent.iterdir() if p.is_dir()]:
            _kill_now(child)  # a dead daemon's that had our pid: its names would clash with ours
        containment = cls(mechanism, parent)
        try:
            containment.probe()
        except (OSError, ContainmentError):
            containment.remove(parent)
            raise
        return containment

    def probe(self) -> None:
        control = {CGROUP2: ("cgroup.kill", "cgroup.freeze"), FREEZER: ("freezer.state",), PIDS: ("pids.max",)}
        path = self.parent / "probe"
        path.mkdir(exist_ok=True)
        try:
            if not any((path / name).exists() for name in control[self.mechanism]):
                raise ContainmentError(str(path), f"none of {', '.join(control[self.mechanism])}")
            scope = CgroupScope(self, Slot.at(path, self.mechanism), "probe")
            joined = subprocess.run(scope.argv("exit 0"), capture_output=True, check=False)
            if joined.returncode != 0:
                reason = joined.stderr.decode(errors="replace").strip()
                raise ContainmentError(str(path / "cgroup.procs"), f"a process cannot join: {reason}")
        finally:
            self.remove(path)

    def open_scope(self) -> Scope:
        execution_id = new_execution_id()
        if self.idle:
            slot = self.idle.pop()
        else:
            # Named apart from the execution: a directory may serve several in turn.
            path = self.parent / f"run-{next(self._names)}"
            try:
                path.mkdir()
            except OSError as exc:
                # Still contained, by the fallback: better than refusing to run the check.
                self.stats.failed("create", cgroup=str(path), error=exc)
                return ProcessTreeScope(self.stats, execution_id)
            slot = Slot.at(path, self.mechanism)
        self.running += 1
        return CgroupScope(self, slot, execution_id)

    def release(self, slot: Slot, *, reusable: bool) -> None:
        """An execution's end: keep its cgroup for the next while others run, else remove it."""
        self.running -= 1
        if reusable and self.running and len(self.idle) < MAX_IDLE:
            self.idle.append(slot)
            return
        slot.close()
        if not self.remove(slot.path):
            self.stale.append(slot.path)
            self.stats.failed("remove", cgroup=str(slot.path), error="processes still inside")
        if not self.running:
            self._remove_idle()
        self.retry_stale()

    def _remove_idle(self) -> None:
        while self.idle:
            slot = self.idle.pop()
            slot.close()
            self.remove(slot.path)

    async def kill(self, path: Path) -> None:
        if self.mechanism == CGROUP2 and (path / "cgroup.kill").exists():
            write(path / "cgroup.kill", "1")
        elif self.mechanism == CGROUP2:
            await self._frozen_kill(
                path, "cgroup.freeze", ("1", "0"), lambda: "frozen 1" in _read(path, "cgroup.events")
            )
        elif self.mechanism == FREEZER:
            frozen = lambda: _read(path, "freezer.state").strip() == "FROZEN"  # noqa: E731
            await self._frozen_kill(path, "freezer.state", ("FROZEN", "THAWED"), frozen)
        else:
            write(path / "pids.max", "0")  # no new process can start in it from now on
            if not await wait_until(lambda: _killed_all(path), EMPTY_DEADLINE):
                raise OSError(errno.ETIMEDOUT, f"{path} did not empty")

    async def _frozen_kill(self, path: Path, control: str, states: tuple[str, str], frozen: Callable[[], bool]) -> None:
        write(path / control, states[0])
        try:
            if not await wait_until(frozen, EMPTY_DEADLINE):
                raise OSError(errno.ETIMEDOUT, f"{path / control} did not freeze")
            for pid in read_pids(path):
                send_signal(pid, signal.SIGKILL)  # delivered when thawed, before anything else runs
        finally:
            write(path / control, states[1])

    def remove(self, path: Path) -> bool:
        try:
            path.rmdir()
        except FileNotFoundError:
            return True
        except OSError:
            return False
        return True

    def retry_stale(self) -> None:
        for path in self.stale[:STALE_RETRIES]:
            if self.remove(path):
                self.stale.remove(path)

    def shutdown(self) -> None:
        self._remove_idle()
        self.retry_stale()
        self.remove(self.parent)


def _killed_all(path: Path) -> bool:
    """SIGKILL what is listed; True once nothing is (a dying process stays listed a moment)."""
    pids = read_pids(path)
    for pid in pids:
        send_signal(pid, signal.SIGKILL)
    return not pids


def _read(path: Path, name: str) -> str:
    return (path / name).read_text()


def sweep(base: Path) -> None:
    """Remove the directories of daemons that are gone, killing what they left running."""
    for parent in base.glob("pipeline-*"):
        pid = parent.name.removeprefix("pipeline-")
        if not pid.isdigit() or int(pid) == os.getpid() or Path(f"/proc/{pid}").exists():
            continue
        for child in [p for p in parent.iterdir() if p.is_dir()]:
            _kill_now(child)
        with contextlib.suppress(OSError):
            parent.rmdir()


def _kill_now(path: Path) -> None:
    """Thaw (a daemon may have died while freezing it), SIGKILL all, remove; at start, so blocking."""
    for control, thawed in (("cgroup.freeze", "0"), ("freezer.state", "THAWED")):
        if (path / control).exists():
            write(path / control, thawed)
    deadline = time.monotonic() + 1
    while (pids := read_pids(path)) and time.monotonic() < deadline:
        for pid in pids:
            send_signal(pid, signal.SIGKILL)
        time.sleep(0.001)
    with contextlib.suppress(OSError):
        path.rmdir()

"""The kernel's OOM-kill records, read from ``/dev/kmsg``, as events.

A kmsg record is ``<prefix>,<sequence>,<microseconds since boot>,<flags>;<message>``, optionally
followed by continuation lines that start with a space (``SUBSYSTEM=...``); the kernel escapes
unprintable bytes of the message as ``\\xNN``. An OOM kill leaves two records we use, in order
(kernels 5.0 and later; ``mm/oom_kill.c``)::

    oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=...,mems_allowed=0,
        oom_memcg=/docker/e144...,task_memcg=/docker/e144...,task=sh,pid=2985,uid=0
    Memory cgroup out of memory: Killed process 2985 (sh) total-vm:14564kB, anon-rss:7804kB,
        file-rss:1456kB, shmem-rss:0kB, UID:0 pgtables:60kB oom_score_adj:0

(``Out of memory: Killed process ...`` for a system-wide OOM, whose ``oom-kill:`` line says
``global_oom`` and has no ``oom_memcg``; kernels before 5.0 write ``Killed process ...`` alone.)
The first gives the cgroups, the second the victim and its memory; :class:`OomReader` pairs them
by pid. Nothing here reads a file or a clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from pipeline.core.host_events import host_event
from pipeline.core.numbers import parse_int
from pipeline.errors import HostRecordError
from pipeline.model import Entity, Event

CHECK_NAME = "oom-kill"
STATUS = 2

_RECORD = re.compile(r"(?P<prefix>\d+),(?P<seq>\d+),(?P<usec>\d+),(?P<flags>[^;]*);(?P<message>.*)", re.DOTALL)
_ESCAPE = re.compile(r"\\x([0-9a-fA-F]{2})")
#: How a kill record starts, whatever else it says; a line that starts so and does not parse is bad.
_KILL_START = re.compile(r"(?:(?:Memory cgroup out of memory|Out of memory): )?Killed process ")
_KILL = re.compile(
    r"(?P<scope>Memory cgroup out of memory: |Out of memory: )?Killed process (?P<pid>\d+) \((?P<comm>.*)\)"
    r" total-vm:(?P<vm>\d+)kB, anon-rss:(?P<anon>\d+)kB, file-rss:(?P<file>\d+)kB(?:, shmem-rss:(?P<shmem>\d+)kB)?"
)
_CONTEXT_START = "oom-kill:"
#: A process id: Linux's pid_max is 2**22 at most.
PIDS = (1, 2**22)


@dataclass(frozen=True, slots=True)
class KmsgRecord:
    """One record of the kernel log."""

    facility: int
    level: int
    sequence: int
    #: microseconds since boot (the kernel's clock, not the wall clock)
    kernel_usec: int
    message: str


@dataclass(frozen=True, slots=True)
class OomContext:
    """The ``oom-kill:`` line: which constraint was hit, in which cgroup, for which task."""

    pid: int
    task: str
    constraint: str
    #: the cgroup whose limit was hit (absent for a system-wide OOM)
    oom_memcg: str | None
    #: the victim's own cgroup
    task_memcg: str | None


@dataclass(frozen=True, slots=True)
class OomKill:
    """A process the kernel killed for memory."""

    pid: int
    process: str
    total_vm_kb: int
    anon_rss_kb: int
    file_rss_kb: int
    shmem_rss_kb: int | None
    #: True for ``Memory cgroup out of memory``: a cgroup's limit, not the host, ran out
    memcg: bool
    context: OomContext | None = None

    @property
    def total_bytes(self) -> int:
        """The victim's total virtual memory (``total-vm``, in kB of 1024 bytes) in bytes."""
        return self.total_vm_kb * 1024

    @property
    def cgroup(self) -> str | None:
        """The cgroup that ran out: the OOM's memcg, else (a global OOM) the victim's cgroup."""
        if self.context is None:
            return None
        return self.context.oom_memcg or self.context.task_memcg


def unescape(text: str) -> str:
    """``text`` with the kernel's ``\\xNN`` escapes of unprintable bytes undone."""
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text) if "\\x" in text else text


def parse_record(raw: bytes) -> KmsgRecord:
    """One kmsg record (a read of ``/dev/kmsg``, or one line of a file in its format); its
    continuation lines (`` KEY=value``) are dropped. Raises :class:`HostRecordError`."""
    text = raw.decode("utf-8", errors="replace")
    first = text.split("\n", 1)[0]
    match = _RECORD.fullmatch(first)
    if match is None:
        raise HostRecordError("kmsg", first, "not a kmsg record (prefix,sequence,usec,flags;message)")
    prefix = int(match["prefix"])
    return KmsgRecord(
        facility=prefix >> 3,
        level=prefix & 7,
        sequence=int(match["seq"]),
        kernel_usec=int(match["usec"]),
        message=unescape(match["message"]),
    )


def _fields(text: str) -> dict[str, str]:
    """``a=1,b=2,global_oom`` as ``{a: 1, b: 2, global_oom: ""}``. The task name is last but one
    before ``pid``; a comma in it is kept whole by splitting ``task=`` off first."""
    head, sep, tail = text.partition(",task=")
    pairs = [item.partition("=") for item in head.split(",")]
    fields = {key: value for key, _, value in pairs}
    if sep:
        task, _, rest = tail.rpartition(",pid=")
        fields["task"] = task
        pid, _, uid = rest.partition(",uid=")
        fields["pid"], fields["uid"] = pid, uid
    return fields


def parse_context(message: str) -> OomContext:
    """The ``oom-kill:constraint=...,task=<comm>,pid=<pid>,uid=<uid>`` line."""
    fields = _fields(message.removeprefix(_CONTEXT_START))
    pid = fields.get("pid", "")
    number = parse_int(pid, PIDS)
    if number is None or "task" not in fields:
        raise HostRecordError("kmsg", message, "oom-kill line without task= and pid=")
    return OomContext(
        pid=number,
        task=fields["task"],
        constraint=fields.get("constraint", ""),
        oom_memcg=fields.get("oom_memcg") or None,
        task_memcg=fields.get("task_memcg") or None,
    )


def parse_kill(message: str) -> OomKill:
    """A ``... Killed process <pid> (<comm>) total-vm:...kB, anon-rss:...kB, ...`` line."""
    match = _KILL.match(message)
    if match is None:
        raise HostRecordError("kmsg", message, "OOM kill record without pid, process and total-vm")
    shmem = match["shmem"]
    return OomKill(
        pid=int(match["pid"]),
        process=match["comm"],
        total_vm_kb=int(match["vm"]),
        anon_rss_kb=int(match["anon"]),
        file_rss_kb=int(match["file"]),
        shmem_rss_kb=int(shmem) if shmem is not None else None,
        memcg=match["scope"] == "Memory cgroup out of memory: ",
    )


@dataclass(slots=True)
class OomReader:
    """Kernel log messages in, OOM kills out: keeps the last ``oom-kill:`` line and gives it to
    the kill record of the same pid that follows it."""

    _pending: OomContext | None = field(default=None)

    def feed(self, message: str) -> OomKill | None:
        """The kill ``message`` reports, if any. Raises :class:`HostRecordError` for an OOM record
        that does not parse (the reader stays usable)."""
        if message.startswith(_CONTEXT_START):
            self._pending = None  # a bad context line must not stick to a later kill
            self._pending = parse_context(message)
            return None
        if _KILL_START.match(message) is None:
            return None
        pending, self._pending = self._pending, None
        kill = parse_kill(message)
        if pending is not None and pending.pid == kill.pid:
            return replace(kill, context=pending)
        return kill


def output(kill: OomKill) -> str:
    return (
        f"{kill.process} process with pid {kill.pid} terminated by OOM killer. "
        f"Total allocated memory {kill.total_bytes} bytes"
    )


def oom_annotations(kill: OomKill, record: KmsgRecord) -> dict[str, str]:
    """What an operator asks next: the process, its memory, the cgroup and the kernel's time."""
    notes = {
        "oom.process": kill.process,
        "oom.pid": str(kill.pid),
        "oom.total_vm_bytes": str(kill.total_bytes),
        "oom.anon_rss_bytes": str(kill.anon_rss_kb * 1024),
        "oom.file_rss_bytes": str(kill.file_rss_kb * 1024),
        "oom.scope": "cgroup" if kill.memcg else "system",
        "oom.kernel_usec": str(record.kernel_usec),
    }
    if kill.shmem_rss_kb is not None:
        notes["oom.shmem_rss_bytes"] = str(kill.shmem_rss_kb * 1024)
    if kill.context is not None:
        notes["oom.constraint"] = kill.context.constraint
        if kill.cgroup is not None:
            notes["oom.cgroup"] = kill.cgroup
        if kill.context.task_memcg is not None:
            notes["oom.task_cgroup"] = kill.context.task_memcg
    return notes


def oom_event(entity: Entity, kill: OomKill, record: KmsgRecord, *, timestamp: int) -> Event:
    """The change event of an OOM kill on the agent's host, status 2 (critical)."""
    return host_event(
        entity,
        name=CHECK_NAME,
        output=output(kill),
        status=STATUS,
        timestamp=timestamp,
        annotations=oom_annotations(kill, record),
    )

"""The kernel's OOM records, parsed from real kernel lines: this host's own (kernel 6.18, a
memory-limited cgroup v1), and lines operators posted from kernels 3.x to 6.x."""

from __future__ import annotations

import pytest

from pipeline.core.host.oom import OomReader, oom_event, output, parse_context, parse_kill, parse_record
from pipeline.core.push.common import CHANGE, CHANGE_LABEL
from pipeline.errors import HostRecordError
from pipeline.model import Entity, ObjectMeta

# /dev/kmsg of this sandbox, kernel 6.18, a process killed in a Docker container's memory cgroup
MEMCG_CONTEXT = (
    b"6,704,19169246385,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),"
    b"cpuset=3723a8ebc2a7239c118330ec4da31b5ddb273a94b1060cd6042becf50f2f5ace,mems_allowed=0,"
    b"oom_memcg=/docker/3723a8ebc2a7239c118330ec4da31b5ddb273a94b1060cd6042becf50f2f5ace,"
    b"task_memcg=/docker/3723a8ebc2a7239c118330ec4da31b5ddb273a94b1060cd6042becf50f2f5ace,task=sh,pid=31322,uid=0\n"
)
MEMCG_KILL = (
    b"3,705,19169246403,-;Memory cgroup out of memory: Killed process 31322 (sh) total-vm:14564kB, "
    b"anon-rss:7688kB, file-rss:1456kB, shmem-rss:0kB, UID:0 pgtables:60kB oom_score_adj:0\n"
)
# system-wide OOM on a CentOS host (kernel 4.18), from its /var/log/messages
GLOBAL_CONTEXT = (
    "oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,"
    "task_memcg=/system.slice/pm2-root.service,task=node,pid=2092,uid=0"
)
GLOBAL_KILL = (
    "Out of memory: Killed process 2092 (node) total-vm:2546008kB, anon-rss:1665620kB, file-rss:936kB, "
    "shmem-rss:0kB, UID:0 pgtables:38108kB oom_score_adj:0"
)
# kernel 5.3-rc5 (no UID, pgtables or oom_score_adj yet)
KILL_5_3 = "Out of memory: Killed process 3035 (oomprocs) total-vm:1056800kB, anon-rss:8kB, file-rss:4kB, shmem-rss:0kB"
# kernels before 5.0: "Out of memory: Kill process ... or sacrifice child", then this
KILL_4_X = "Killed process 31357 (sh) total-vm:5400kB, anon-rss:252kB, file-rss:4kB, shmem-rss:0kB"
# kernels 3.x had no shmem-rss
KILL_3_X = "Killed process 2592 (mysqld) total-vm:2493852kB, anon-rss:1491128kB, file-rss:0kB"


def test_a_kmsg_record_splits_into_facility_level_sequence_time_and_message() -> None:
    record = parse_record(MEMCG_KILL)
    assert (record.facility, record.level, record.sequence, record.kernel_usec) == (0, 3, 705, 19169246403)
    assert record.message.startswith("Memory cgroup out of memory: Killed process 31322 (sh)")


def test_continuation_lines_are_dropped_and_escapes_undone() -> None:
    record = parse_record(b"4,10,5,-;Killed process 7 (a\\x20b) total-vm:1kB\n SUBSYSTEM=mem\n DEVICE=+x\n")
    assert record.message == "Killed process 7 (a b) total-vm:1kB"


@pytest.mark.parametrize("raw", [b"", b"no header here", b"6,x,1,-;msg", b"6,1,2"])
def test_a_record_without_the_kmsg_header_is_refused_with_the_record(raw: bytes) -> None:
    with pytest.raises(HostRecordError) as caught:
        parse_record(raw)
    assert caught.value.source == "kmsg"
    assert caught.value.record == raw.decode()


def test_memcg_kill_takes_its_cgroup_from_the_oom_kill_line_before_it() -> None:
    reader = OomReader()
    assert reader.feed(parse_record(MEMCG_CONTEXT).message) is None
    kill = reader.feed(parse_record(MEMCG_KILL).message)
    assert kill is not None
    assert (kill.process, kill.pid, kill.total_vm_kb, kill.anon_rss_kb, kill.memcg) == ("sh", 31322, 14564, 7688, True)
    assert kill.cgroup == "/docker/3723a8ebc2a7239c118330ec4da31b5ddb273a94b1060cd6042becf50f2f5ace"
    assert kill.total_bytes == 14564 * 1024


def test_global_oom_names_the_victims_cgroup() -> None:
    reader = OomReader()
    reader.feed(GLOBAL_CONTEXT)
    kill = reader.feed(GLOBAL_KILL)
    assert kill is not None
    assert kill.context is not None
    assert (kill.process, kill.pid, kill.memcg) == ("node", 2092, False)
    assert kill.context.oom_memcg is None
    assert kill.context.constraint == "CONSTRAINT_NONE"
    assert kill.cgroup == "/system.slice/pm2-root.service"


@pytest.mark.parametrize(
    ("line", "pid", "comm", "vm", "shmem"),
    [
        (KILL_5_3, 3035, "oomprocs", 1056800, 0),
        (KILL_4_X, 31357, "sh", 5400, 0),
        (KILL_3_X, 2592, "mysqld", 2493852, None),
    ],
)
def test_older_kernels_kill_lines_parse(line: str, pid: int, comm: str, vm: int, shmem: int | None) -> None:
    kill = parse_kill(line)
    assert (kill.pid, kill.process, kill.total_vm_kb, kill.shmem_rss_kb, kill.context) == (pid, comm, vm, shmem, None)


def test_process_names_with_spaces_and_parentheses_are_kept_whole() -> None:
    kill = parse_kill("Out of memory: Killed process 4444 (Web Content) total-vm:3kB, anon-rss:2kB, file-rss:1kB")
    assert kill.process == "Web Content"
    context = parse_context("oom-kill:constraint=CONSTRAINT_NONE,global_oom,task_memcg=/,task=a,b=c,pid=9,uid=0")
    assert (context.task, context.pid) == ("a,b=c", 9)
    assert parse_kill("Killed process 5 ((sd-pam)) total-vm:3kB, anon-rss:2kB, file-rss:1kB").process == "(sd-pam)"


def test_a_context_line_for_another_pid_is_not_attached() -> None:
    reader = OomReader()
    reader.feed(GLOBAL_CONTEXT)
    kill = reader.feed(KILL_4_X)
    assert kill is not None
    assert kill.context is None
    assert kill.cgroup is None


@pytest.mark.parametrize(
    "message",
    [
        "Out of memory: Killed process 2092 (node) total-vm:",  # truncated
        "Memory cgroup out of memory: Killed process x (sh) total-vm:1kB, anon-rss:1kB, file-rss:1kB",
        "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null)",  # no task, no pid
    ],
)
def test_an_oom_record_that_does_not_parse_is_refused_and_the_reader_goes_on(message: str) -> None:
    reader = OomReader()
    with pytest.raises(HostRecordError):
        reader.feed(message)
    assert reader.feed(KILL_4_X) is not None


def test_other_kernel_messages_are_not_kills() -> None:
    reader = OomReader()
    for message in (
        "sh invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0",
        "oom_reaper: reaped process 2092 (node), now anon-rss:0kB, file-rss:0kB, shmem-rss:0kB",
        "Out of memory: Kill process 19961 (python) score 17 or sacrifice child",
        "[  31322]     0 31322     3641     2286     1922      364         0    61440        0             0 sh",
    ):
        assert reader.feed(message) is None


def test_the_event_is_a_critical_change_event_of_the_agents_entity() -> None:
    entity = Entity(metadata=ObjectMeta(name="web1", namespace="default"))
    reader = OomReader()
    reader.feed(parse_record(MEMCG_CONTEXT).message)
    record = parse_record(MEMCG_KILL)
    kill = reader.feed(record.message)
    assert kill is not None
    event = oom_event(entity, kill, record, timestamp=1700000000)
    assert event.entity.metadata.name == "web1"
    assert event.check is not None
    assert event.check.metadata.name == "oom-kill"
    assert event.check.status == 2
    assert event.check.output == output(kill)
    assert (
        event.check.output
        == "sh process with pid 31322 terminated by OOM killer. Total allocated memory 14913536 bytes"
    )
    assert event.check.metadata.labels[CHANGE_LABEL] == CHANGE
    notes = event.check.metadata.annotations
    assert notes["oom.process"] == "sh"
    assert notes["oom.pid"] == "31322"
    assert notes["oom.total_vm_bytes"] == "14913536"
    assert notes["oom.cgroup"].startswith("/docker/3723a8")
    assert notes["oom.scope"] == "cgroup"
    event.validate()

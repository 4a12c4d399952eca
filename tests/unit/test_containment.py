"""Nothing a command starts outlives its execution: cgroup v2, v1 freezer, v1 pids, and the fallback.

Every test runs real processes. A child writes its pid to a file; the test then waits for that
pid to terminate (a zombie left to init counts: it runs nothing). The cgroup mechanisms run
where this host lets us write a hierarchy (these machines have v1 freezer and pids, and v2 at
/sys/fs/cgroup/unified) and say why they are skipped elsewhere.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from pipeline import containment
from pipeline.agent.executor import CheckExecutor
from pipeline.backend.handlers import HandlerRunner
from pipeline.config import Resources
from pipeline.containment import proctree
from pipeline.containment.cgroup import Cgroup
from pipeline.containment.detect import candidates, detect
from pipeline.containment.proctree import ProcessTree
from pipeline.errors import ContainmentError
from pipeline.metrics import BackendMetrics
from pipeline.model import Check, CheckConfig, Entity, Event, ObjectMeta
from pipeline.model.check import HookConfig
from pipeline.model.pipeline import Mutator
from pipeline.model.resources import Handler
from pipeline.process import TIMED_OUT_OUTPUT, run_command
from tests.support import wait_for_exit

MECHANISMS = ["cgroup2", "cgroup1-freezer", "cgroup1-pids", "process-tree"]
ENV = {"PATH": "/usr/bin:/bin"}


def make(mechanism: str) -> containment.Containment:
    if mechanism == "process-tree":
        return ProcessTree()
    bases = dict(candidates(Path("/proc/self/mountinfo").read_text(), Path("/proc/self/cgroup").read_text(), None))
    if mechanism not in bases:
        pytest.skip(f"{mechanism} is not mounted here")
    try:
        return Cgroup.create(mechanism, bases[mechanism])
    except (OSError, ContainmentError) as exc:
        pytest.skip(f"{mechanism} is not writable here: {exc}")


@pytest.fixture(params=MECHANISMS)
def contained(request: pytest.FixtureRequest) -> Iterator[containment.Containment]:
    """The mechanism, made the process's own for the test (entry points use the current one)."""
    chosen = make(request.param)
    previous = containment.set_current(chosen)
    yield chosen
    containment.set_current(previous)
    chosen.shutdown()
    if isinstance(chosen, Cgroup):
        assert not chosen.parent.exists(), "the daemon's cgroup directory was left behind"


def leftover_dirs(chosen: containment.Containment) -> list[str]:
    if not isinstance(chosen, Cgroup):
        return []
    return [p.name for p in chosen.parent.iterdir() if p.is_dir()]


async def test_background_child_of_a_shell_that_exited_is_killed_at_once(
    contained: containment.Containment, tmp_path: Path
) -> None:
    pidfile = tmp_path / "pid"
    result = await run_command(f"sleep 600 & echo $! > {pidfile}; echo started", timeout=30)
    # Not a timeout: the shell's exit ends the execution, and the child's end closes the output.
    assert (result.status, result.output, result.timed_out) == (0, "started\n", False)
    await wait_for_exit(int(pidfile.read_text()))
    assert contained.stats.leftovers_killed == 1
    assert leftover_dirs(contained) == []


async def test_a_setsid_child_is_killed_on_timeout(contained: containment.Containment, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    result = await run_command(f"setsid sleep 600 & echo $! > {pidfile}; sleep 600", timeout=0.5)
    assert result.timed_out
    assert result.output == TIMED_OUT_OUTPUT
    await wait_for_exit(int(pidfile.read_text()))
    assert leftover_dirs(contained) == []


async def test_an_orphan_in_its_own_session_is_killed_when_the_shell_exits(
    contained: containment.Containment, tmp_path: Path
) -> None:
    """The worst case for the fallback: new session, parent gone, output closed; found by its environment."""
    pidfile = tmp_path / "pid"
    # the orphan waits for a signal, not for time: only its killing ends it
    script = f"import os, signal; os.setsid(); open({str(pidfile)!r}, 'w').write(str(os.getpid())); signal.pause()"
    command = f'(python3 -c "{script}" >/dev/null 2>&1 &) ; while [ ! -s {pidfile} ]; do :; done; echo ok'
    result = await run_command(command, timeout=30)
    assert (result.status, result.output) == (0, "ok\n")
    await wait_for_exit(int(pidfile.read_text()))


async def test_no_cgroup_is_left_after_many_runs(contained: containment.Containment) -> None:
    for _ in range(200):
        result = await run_command("true & exit 0")
        assert result.status == 0
    assert leftover_dirs(contained) == []
    assert contained.stats.errors == {}


@pytest.mark.parametrize("contained", [m for m in MECHANISMS if m != "process-tree"], indirect=True)
async def test_cgroups_are_reused_while_others_run_and_removed_once_idle(contained: containment.Containment) -> None:
    assert isinstance(contained, Cgroup)  # the process tree makes nothing per execution
    remaining = iter(range(64))

    async def worker() -> None:
        for _ in remaining:
            assert (await run_command("true")).status == 0

    async with trio.open_nursery() as nursery:
        for _ in range(8):
            nursery.start_soon(worker)
    # 64 executions 8 at once: far fewer cgroups made than executions, none left when idle
    assert next(contained._names) <= 33
    assert leftover_dirs(contained) == []
    assert contained.stats.errors == {}
    # one that had to be killed is not reused: a fresh cgroup serves the next execution
    result = await run_command("sleep 600 & exit 0")
    assert result.status == 0
    assert contained.stats.leftovers_killed == 1
    assert leftover_dirs(contained) == []


@pytest.mark.parametrize("contained", [m for m in MECHANISMS if m != "process-tree"], indirect=True)
async def test_a_reused_cgroup_still_finds_what_its_next_execution_leaves(
    contained: containment.Containment, tmp_path: Path
) -> None:
    """A kept cgroup was last read empty (on v2 through a descriptor kept open): its next
    execution's leftover must still be seen and killed (v1 would give the stale list)."""
    assert isinstance(contained, Cgroup)
    release = trio.Event()

    async def hold() -> None:  # keeps one execution running, so that ended cgroups are kept
        await run_command(f"while [ ! -e {tmp_path / 'stop'} ]; do sleep 0.01; done")
        release.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(hold)
        for _ in range(3):
            assert (await run_command("true")).status == 0
        assert len(contained.idle) == 1  # kept
        assert (contained.idle[0].procs >= 0) == (contained.mechanism == "cgroup2")
        result = await run_command(f"sleep 600 & echo $! > {tmp_path / 'pid'}; exit 0")
        assert result.status == 0
        assert contained.stats.leftovers_killed == 1
        await wait_for_exit(int((tmp_path / "pid").read_text()))
        (tmp_path / "stop").touch()
        await release.wait()
    assert leftover_dirs(contained) == []
    assert contained.stats.errors == {}


async def test_the_mechanism_and_the_leftovers_are_exported(contained: containment.Containment) -> None:
    metrics = BackendMetrics.create()
    await run_command("sleep 600 & sleep 600 & exit 0")
    sample = metrics.registry.get_sample_value
    assert sample("pipeline_process_containment", {"mechanism": contained.mechanism}) == 1
    assert sample("pipeline_process_leftovers_killed_total") == 2


# -- through the real entry points: check, hook, pipe mutator, pipe handler ------------------------


@pytest.fixture(params=["cgroup", "process-tree"])
def either(request: pytest.FixtureRequest) -> Iterator[containment.Containment]:
    """The best cgroup mechanism here, then the fallback forced through the setting."""
    if request.param == "cgroup":
        chosen = detect({})
        if chosen.mechanism == "process-tree":
            pytest.skip("no cgroup hierarchy is writable here")
    else:
        chosen = detect({containment.MECHANISM_VARIABLE: "process-tree"})
        assert isinstance(chosen, ProcessTree)
    previous = containment.set_current(chosen)
    yield chosen
    containment.set_current(previous)
    chosen.shutdown()


def check_config(command: str, **fields: object) -> CheckConfig:
    return CheckConfig(metadata=ObjectMeta(name="probe", namespace="default"), command=command, interval=10,
                       subscriptions=["linux"], **fields)  # type: ignore[arg-type]  # fmt: skip


def agent_entity() -> Entity:
    return Entity(entity_class="agent", metadata=ObjectMeta(name="web1", namespace="default"))


async def test_check_and_hook_children_are_gone(either: containment.Containment, tmp_path: Path) -> None:
    executor = CheckExecutor(agent_entity(), ENV)
    executor.hooks["diag"] = HookConfig(
        metadata=ObjectMeta(name="diag", namespace="default"),
        command=f"setsid sleep 600 & echo $! > {tmp_path / 'hook'}; echo diagnosed",
        timeout=30,
    )
    config = check_config(f"sleep 600 & echo $! > {tmp_path / 'check'}; echo started; exit 2",
                          timeout=30, check_hooks=[{"critical": ["diag"]}])  # fmt: skip
    event = await executor.execute(config, issued=0)
    assert event.check is not None
    assert (event.check.status, event.check.output) == (2, "started\n")
    assert [(h.status, h.output) for h in event.check.hooks] == [(0, "diagnosed\n")]
    await wait_for_exit(int((tmp_path / "check").read_text()))
    await wait_for_exit(int((tmp_path / "hook").read_text()))


async def test_a_timed_out_check_takes_its_setsid_child_along(either: containment.Containment, tmp_path: Path) -> None:
    executor = CheckExecutor(agent_entity(), ENV)
    event = await executor.execute(check_config(f"setsid sleep 600 & echo $! > {tmp_path / 'pid'}; wait", timeout=1), 0)
    assert event.check is not None
    assert event.check.output == TIMED_OUT_OUTPUT
    await wait_for_exit(int((tmp_path / "pid").read_text()))


async def test_pipe_mutator_and_handler_children_are_gone(either: containment.Containment, tmp_path: Path) -> None:
    meta = ObjectMeta(name="leaky", namespace="default")
    mutator = Mutator(metadata=meta, command=f"setsid sleep 600 & echo $! > {tmp_path / 'mutator'}; cat", timeout=30)
    handler = Handler(metadata=ObjectMeta(name="pager", namespace="default"), type="pipe", mutator="leaky",
                      command=f"sleep 600 & echo $! > {tmp_path / 'handler'}; cat > {tmp_path / 'got'}",
                      timeout=30)  # fmt: skip
    metrics = BackendMetrics.create()
    runner = HandlerRunner(lambda: Resources(handlers=[handler], mutators=[mutator]), metrics, ENV)
    event = Event(
        entity=Entity(metadata=ObjectMeta(name="web1", namespace="default")),
        check=Check(metadata=ObjectMeta(name="disk", namespace="default"), status=2, handlers=["pager"]),
        id="5f0c3c1e-3a43-4bb9-8d2e-5a2b1c9d7e6f",
    )
    await runner.handle(event)
    assert Event.from_json((tmp_path / "got").read_bytes()) == event
    await wait_for_exit(int((tmp_path / "mutator").read_text()))
    await wait_for_exit(int((tmp_path / "handler").read_text()))
    assert metrics.registry.get_sample_value("pipeline_process_leftovers_killed_total") == 2


# -- choosing the mechanism ------------------------------------------------------------------------

HYBRID = """\
30 25 0:26 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
31 25 0:27 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
32 25 0:28 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
33 25 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
"""
PURE_V2 = "30 25 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"


def test_candidates_follow_the_daemons_own_cgroup_in_each_hierarchy() -> None:
    own = "0::/system.slice/pipeline.service\n6:freezer:/ci\n8:pids:/\n"
    assert candidates(HYBRID, own, None) == [
        ("cgroup2", Path("/sys/fs/cgroup/unified/system.slice/pipeline.service")),
        ("cgroup1-freezer", Path("/sys/fs/cgroup/freezer/ci")),
        ("cgroup1-pids", Path("/sys/fs/cgroup/pids")),
    ]
    assert candidates(PURE_V2, "0::/user.slice/app.scope\n", None) == [
        ("cgroup2", Path("/sys/fs/cgroup/user.slice/app.scope"))
    ]
    assert candidates(PURE_V2, "0::/a\n", "/sys/fs/cgroup/pipeline.slice") == [
        ("cgroup2", Path("/sys/fs/cgroup/pipeline.slice"))
    ]
    assert candidates("", "0::/\n", None) == []


def test_an_unknown_or_unusable_setting_is_refused_by_name() -> None:
    with pytest.raises(ContainmentError, match="PIPELINE_PROCESS_CONTAINMENT: 'cgroups' is not one of"):
        detect({containment.MECHANISM_VARIABLE: "cgroups"})
    with pytest.raises(ContainmentError, match="cgroup2 is not usable here"):
        detect({containment.MECHANISM_VARIABLE: "cgroup2", containment.PARENT_VARIABLE: "/nonexistent/cgroup"})


@pytest.mark.parametrize("mechanism", MECHANISMS[:3])
def test_a_dead_daemons_cgroups_are_swept_at_start(mechanism: str) -> None:
    first = make(mechanism)
    assert isinstance(first, Cgroup)
    dead = first.parent.parent / "pipeline-999999999"
    (dead / "x").mkdir(parents=True)
    again = Cgroup.create(mechanism, first.parent.parent)
    assert not dead.exists()
    assert again.parent == first.parent
    assert again.parent.name == f"pipeline-{os.getpid()}"
    again.shutdown()
    assert not again.parent.exists()


async def test_a_child_the_first_scan_misses_is_looked_for_again_while_the_output_is_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scan of /proc can miss a process caught between ``setsid`` and its exec (its environment
    unreadable for a moment, its shell gone): here the first scan is made to miss it. The
    execution looks again while the child holds its output, rather than waiting out its timeout."""
    chosen = detect({containment.MECHANISM_VARIABLE: "process-tree"})
    previous = containment.set_current(chosen)
    missing = True
    real_kill, real_marker = proctree.ProcessTreeScope.kill_all, proctree._has_marker

    async def first_kill_misses(scope: proctree.ProcessTreeScope) -> None:
        nonlocal missing
        await real_kill(scope)
        missing = False

    monkeypatch.setattr(proctree.ProcessTreeScope, "kill_all", first_kill_misses)
    monkeypatch.setattr(proctree, "_has_marker", lambda pid, marker: not missing and real_marker(pid, marker))
    try:
        # The shell exits once its child runs in a session of its own: only its environment says it is ours.
        fifo, pid = tmp_path / "ready", tmp_path / "pid"
        result = await run_command(f"mkfifo {fifo}; setsid sh -c 'echo ready > {fifo}; exec sleep 600' & echo $! > {pid};"
                                   f" read ready < {fifo}; echo done", timeout=60)  # fmt: skip
    finally:
        containment.set_current(previous)
        chosen.shutdown()
    assert (result.status, result.output, result.timed_out) == (0, "done\n", False)
    await wait_for_exit(int((tmp_path / "pid").read_text()))

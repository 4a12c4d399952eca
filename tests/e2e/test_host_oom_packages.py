"""The oom and packages sources against the real thing, each run alone (a nursery, a memory
channel): the kernel OOM-killing a process in a memory-limited cgroup, read from the real
``/dev/kmsg``; a ``.deb`` built here installed and removed with dpkg (followed in the real
``/var/log/dpkg.log``); a wheel built here installed and uninstalled by pip in a fresh venv; a
package installed and uninstalled by npm under a global prefix.

They need root (the cgroup, dpkg) and fail, saying why, where the host cannot do one of these:
.ci/setup makes a fresh machine able to.
Real clock with a hang guard: subprocesses and the kernel are involved.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from prometheus_client import CollectorRegistry

from pipeline.agent.sources.base import SourceContext, SourceSettings
from pipeline.agent.sources.oom import OomSource
from pipeline.agent.sources.packages import PackagesSource
from pipeline.model import Entity, Event, ObjectMeta
from pipeline.model.entity import System
from tests.support import build_wheel

pytestmark = pytest.mark.e2e

GUARD = 120
KMSG = Path("/dev/kmsg")
MEMORY_LIMIT = 64 * 1024 * 1024
#: allocates (and writes) a MiB at a time until the kernel kills it
HOG = "b = []\nwhile True: b.append(b'x' * (1 << 20))"


def _context(**settings: object) -> SourceContext:
    entity = Entity(metadata=ObjectMeta(name="web1", namespace="default"), system=System(hostname="web1.example"))
    return SourceContext(entity=entity, settings=SourceSettings(**settings), registry=CollectorRegistry())  # type: ignore[arg-type]


def _write(path: Path, text: str) -> None:
    path.write_text(text)


def _v2_memory_cgroup(root: Path, name: str) -> Path | None:
    """A child of a cgroup v2 hierarchy with memory.max, if its memory controller is ours."""
    controllers = root / "cgroup.controllers"
    if not controllers.exists() or "memory" not in controllers.read_text().split():
        return None
    _write(root / "cgroup.subtree_control", "+memory")
    group = root / name
    group.mkdir()
    _write(group / "memory.max", str(MEMORY_LIMIT))
    if (group / "memory.swap.max").exists():
        _write(group / "memory.swap.max", "0")
    return group


def _v1_memory_cgroup(root: Path, name: str) -> Path | None:
    if not (root / "memory.limit_in_bytes").exists():
        return None
    group = root / name
    group.mkdir()
    _write(group / "memory.limit_in_bytes", str(MEMORY_LIMIT))
    if (group / "memory.memsw.limit_in_bytes").exists():
        _write(group / "memory.memsw.limit_in_bytes", str(MEMORY_LIMIT))  # no escape into swap
    return group


@pytest.fixture
def memory_cgroup() -> Iterator[Path]:
    """A new cgroup limited to :data:`MEMORY_LIMIT`: cgroup v2 where its memory controller is
    free, else the v1 memory hierarchy (this sandbox: v1 holds the memory controller)."""
    if os.geteuid() != 0:
        pytest.fail("a memory-limited cgroup needs root")
    name = f"pipeline-oom-e2e-{os.getpid()}"
    base = Path("/sys/fs/cgroup")
    group = None
    try:
        group = (
            _v2_memory_cgroup(base, name)
            or _v2_memory_cgroup(base / "unified", name)
            or _v1_memory_cgroup(base / "memory", name)
        )
    except OSError as error:
        pytest.fail(f"no writable memory cgroup here: {error}")
    if group is None:
        pytest.fail("no memory cgroup controller here (neither cgroup v2 nor v1)")
    yield group
    group.rmdir()


def _kmsg_readable() -> bool:
    try:
        os.close(os.open(KMSG, os.O_RDONLY | os.O_NONBLOCK))
    except OSError:
        return False
    return True


async def test_a_real_oom_kill_in_a_memory_limited_cgroup_is_reported(memory_cgroup: Path) -> None:
    if not _kmsg_readable():
        pytest.fail("/dev/kmsg cannot be read here")
    context = _context(kmsg_path=KMSG)
    send, receive = trio.open_memory_channel[Event](100)
    # the child moves itself into the cgroup before it execs the hog, so all it allocates counts
    script = f'echo $$ > {memory_cgroup}/cgroup.procs && exec {sys.executable} -c "{HOG}"'
    with trio.fail_after(GUARD):
        async with trio.open_nursery() as nursery:
            await nursery.start(OomSource(context).run, send)
            hog = await trio.lowlevel.open_process(["sh", "-c", script])
            assert await hog.wait() == -9
            event = await _oom_event_of(receive, hog.pid)
            nursery.cancel_scope.cancel()
    assert event.check is not None
    notes = event.check.metadata.annotations
    process = Path(sys.executable).name[:15]  # the kernel's comm: the executable's name, 15 bytes at most
    total = int(notes["oom.total_vm_bytes"])
    assert event.check.output == (
        f"{process} process with pid {hog.pid} terminated by OOM killer. Total allocated memory {total} bytes"
    )
    assert total > MEMORY_LIMIT // 2
    assert event.check.status == 2
    assert event.check.metadata.name == "oom-kill"
    assert notes["oom.process"] == process
    assert notes["oom.cgroup"] == f"/{memory_cgroup.name}"
    assert notes["oom.scope"] == "cgroup"
    assert context.registry.get_sample_value("pipeline_agent_oom_bad_records_total") == 0


async def test_a_kill_while_the_source_was_stopped_is_reported_when_it_restarts(memory_cgroup: Path) -> None:
    """As the agent restarts a failed source: the same source object, run again."""
    if not _kmsg_readable():
        pytest.fail("/dev/kmsg cannot be read here")
    context = _context(kmsg_path=KMSG)
    source = OomSource(context)
    send, receive = trio.open_memory_channel[Event](100)
    script = f'echo $$ > {memory_cgroup}/cgroup.procs && exec {sys.executable} -c "{HOG}"'
    with trio.fail_after(GUARD):
        async with trio.open_nursery() as nursery:
            await nursery.start(source.run, send)
            nursery.cancel_scope.cancel()
        hog = await trio.lowlevel.open_process(["sh", "-c", script])
        assert await hog.wait() == -9
        async with trio.open_nursery() as nursery:
            await nursery.start(source.run, send)
            event = await _oom_event_of(receive, hog.pid)
            nursery.cancel_scope.cancel()
    assert event.check is not None
    assert event.check.metadata.annotations["oom.cgroup"] == f"/{memory_cgroup.name}"
    # at least ours: other processes of the host (containers of other tests) may be killed too
    assert (context.registry.get_sample_value("pipeline_agent_oom_kills_total") or 0) >= 1


async def _oom_event_of(receive: trio.MemoryReceiveChannel[Event], pid: int) -> Event:
    """The event of ``pid``'s kill (other processes of the host may be OOM-killed meanwhile)."""
    async for event in receive:
        if event.check is not None and event.check.metadata.annotations.get("oom.pid") == str(pid):
            return event
    raise AssertionError("the oom source stopped")


# ---------------------------------------------------------------------------- packages


def _build_deb(tmp_path: Path, name: str) -> Path:
    root = tmp_path / "deb"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "usr/share/doc" / name).mkdir(parents=True)
    (root / "usr/share/doc" / name / "README").write_text("a package of pipeline's tests\n")
    control = f"Package: {name}\nVersion: 1.0-1\nArchitecture: all\nMaintainer: pipeline <t@example.com>\n"
    (root / "DEBIAN/control").write_text(control + "Description: pipeline e2e probe\n")
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(root), str(tmp_path / f"{name}.deb")],
                   check=True, capture_output=True)  # fmt: skip
    return tmp_path / f"{name}.deb"


async def _run(*argv: str) -> None:
    """``argv``, retried while another dpkg holds dpkg's lock (other tests install packages)."""
    for _ in range(60):
        done = await trio.run_process(list(argv), capture_stdout=True, capture_stderr=True, check=False)
        if done.returncode == 0:
            return
        if b"lock" not in done.stderr:
            raise AssertionError(f"{argv}: {done.stderr.decode(errors='replace')}")
        await trio.sleep(1)  # an external lock: nothing to wait on but time
    raise AssertionError(f"{argv}: dpkg stayed locked")


async def _package_event(receive: trio.MemoryReceiveChannel[Event], kind: str, action: str, name: str) -> Event:
    """The next event of ``name``'s ``action`` (the host may install other things meanwhile)."""
    async for event in receive:
        check = event.check
        assert check is not None
        if (
            check.metadata.labels["package_type"] == kind
            and check.metadata.name == f"package-{action}"
            and check.metadata.annotations["package.name"] == name
        ):
            return event
    raise AssertionError("the packages source stopped")


def _need(*commands: str) -> None:
    missing = [command for command in commands if shutil.which(command) is None]
    if missing:
        pytest.fail(f"not installed here: {', '.join(missing)}")


async def test_real_dpkg_pip_and_npm_installs_and_removals_are_reported(tmp_path: Path) -> None:
    _need("dpkg", "dpkg-deb", "npm")
    if os.geteuid() != 0:
        pytest.fail("dpkg -i needs root")
    deb_name = f"pipeline-e2e-probe-{os.getpid()}"
    deb = _build_deb(tmp_path, deb_name)
    wheel = build_wheel(tmp_path)
    venv, prefix, node_package = tmp_path / "venv", tmp_path / "node-prefix", tmp_path / "node-package"
    await trio.run_process([sys.executable, "-m", "venv", str(venv)])
    node_package.mkdir()
    (node_package / "package.json").write_text('{"name": "pipeline-tiny-node", "version": "0.2.0"}')
    await trio.run_process(["npm", "pack", "--silent"], cwd=node_package, capture_stdout=True)
    prefix.mkdir()
    npm = ["npm", "--global", "--prefix", str(prefix), "--offline", "--no-audit", "--no-fund"]
    pip = [str(venv / "bin/python"), "-m", "pip", "--disable-pip-version-check", "--no-input"]
    context = _context(package_paths=[venv, prefix], package_interval=0.1)
    send, receive = trio.open_memory_channel[Event](100)
    with trio.fail_after(GUARD):
        async with trio.open_nursery() as nursery:
            await nursery.start(PackagesSource(context).run, send)
            await _run("dpkg", "-i", str(deb))
            installed_deb = await _package_event(receive, "deb", "installed", deb_name)
            await _run(*pip, "install", "--no-index", str(wheel))
            installed_wheel = await _package_event(receive, "python", "installed", "tiny_probe")
            await _run(*npm, "install", str(node_package / "pipeline-tiny-node-0.2.0.tgz"))
            installed_node = await _package_event(receive, "node", "installed", "pipeline-tiny-node")
            await _run("dpkg", "-r", deb_name)
            removed_deb = await _package_event(receive, "deb", "removed", deb_name)
            await _run(*pip, "uninstall", "--yes", "tiny-probe")
            removed_wheel = await _package_event(receive, "python", "removed", "tiny_probe")
            await _run(*npm, "uninstall", "pipeline-tiny-node")
            removed_node = await _package_event(receive, "node", "removed", "pipeline-tiny-node")
            nursery.cancel_scope.cancel()
    host = "on host web1.example"
    outputs = [
        e.check.output if e.check else ""
        for e in (installed_deb, installed_wheel, installed_node, removed_deb, removed_wheel, removed_node)
    ]
    assert outputs == [
        f"Package {deb_name}, version 1.0-1 has been installed {host}",
        f"Package tiny_probe, version 0.1.0 has been installed {host}",
        f"Package pipeline-tiny-node, version 0.2.0 has been installed {host}",
        f"Package {deb_name}, version 1.0-1 has been removed {host}",
        f"Package tiny_probe, version 0.1.0 has been removed {host}",
        f"Package pipeline-tiny-node, version 0.2.0 has been removed {host}",
    ]
    assert installed_deb.check is not None
    assert installed_deb.check.metadata.annotations["package.arch"] == "all"
    assert installed_deb.check.status == 0
    assert installed_wheel.check is not None
    assert installed_wheel.check.metadata.annotations["package.location"].endswith("site-packages")
    # what the venv and the prefix held before the start (pip, setuptools) was the baseline
    assert (
        context.registry.get_sample_value(
            "pipeline_agent_package_changes_total", {"type": "python", "action": "installed"}
        )
        == 1
    )

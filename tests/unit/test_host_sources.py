"""The oom and packages sources run on their own (a nursery, a memory channel) over files the
test writes: a kernel log in kmsg's format, a dpkg log, site-packages and node_modules
directories, and an ``rpm`` script printing a list the test changes. (The real kernel, dpkg and
pip are in tests/e2e/test_host_oom_packages.py.) Real clock with a hang guard: the sources read
files in threads and run subprocesses."""

from __future__ import annotations

import json
from pathlib import Path

import trio
from prometheus_client import CollectorRegistry

from pipeline.agent.sources.base import SourceContext, SourceSettings
from pipeline.agent.sources.oom import OomSource
from pipeline.agent.sources.packages import PackagesSource
from pipeline.model import Entity, Event, ObjectMeta
from pipeline.model.entity import System

GUARD = 20

MEMCG_CONTEXT = (
    "6,871,19476872212,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,"
    "oom_memcg=/pipeline-oom-probe,task_memcg=/pipeline-oom-probe,task=python3,pid=8441,uid=0\n"
)
MEMCG_KILL = (
    "3,872,19476872232,-;Memory cgroup out of memory: Killed process 8441 (python3) total-vm:50488kB, "
    "anon-rss:40688kB, file-rss:6608kB, shmem-rss:0kB, UID:0 pgtables:136kB oom_score_adj:0\n"
)


def _context(tmp_path: Path, **settings: object) -> SourceContext:
    entity = Entity(metadata=ObjectMeta(name="web1", namespace="default"), system=System(hostname="web1.example"))
    return SourceContext(entity=entity, settings=SourceSettings(**settings), registry=CollectorRegistry())  # type: ignore[arg-type]


def _append(path: Path, text: str) -> None:
    with path.open("a") as f:
        f.write(text)


async def test_oom_source_reports_kills_appended_after_its_start_and_counts_bad_records(tmp_path: Path) -> None:
    kmsg = tmp_path / "kmsg"
    kmsg.write_text(MEMCG_CONTEXT + MEMCG_KILL)  # before the start: not reported
    context = _context(tmp_path, kmsg_path=kmsg)
    source = OomSource(context, poll_interval=0.01)
    send, receive = trio.open_memory_channel[Event](10)
    with trio.fail_after(GUARD):
        async with trio.open_nursery() as nursery:
            await nursery.start(source.run, send)
            _append(kmsg, "not a record\n" + "3,900,5,-;Out of memory: Killed process 12 (x) total-vm:\n")
            # a user-space write to /dev/kmsg (facility 1) cannot fake a kill
            _append(
                kmsg, "11,901,6,-;Out of memory: Killed process 13 (fake) total-vm:1kB, anon-rss:1kB, file-rss:1kB\n"
            )
            _append(kmsg, MEMCG_CONTEXT.replace("871", "902") + " SUBSYSTEM=memory\n" + MEMCG_KILL[:40])
            _append(kmsg, MEMCG_KILL[40:])
            event = await receive.receive()
            nursery.cancel_scope.cancel()
    assert event.check is not None
    assert event.check.output == (
        "python3 process with pid 8441 terminated by OOM killer. Total allocated memory 51699712 bytes"
    )
    assert event.check.metadata.annotations["oom.cgroup"] == "/pipeline-oom-probe"
    assert context.registry.get_sample_value("pipeline_agent_oom_bad_records_total") == 2
    assert context.registry.get_sample_value("pipeline_agent_oom_kills_total") == 1


RPM_SCRIPT = """#!/bin/sh
printf "%s\\n" "$@" > {argv}
cat {listing}
"""


def _dist_info(site: Path, name: str, version: str) -> None:
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\n")


def _node_package(node_modules: Path, name: str, version: str) -> None:
    directory = node_modules / name
    directory.mkdir(parents=True)
    (directory / "package.json").write_text(json.dumps({"name": name, "version": version}))


async def _outputs(receive: trio.MemoryReceiveChannel[Event], count: int) -> set[tuple[str, str]]:
    found = set()
    while len(found) < count:
        event = await receive.receive()
        assert event.check is not None
        found.add((event.check.metadata.labels["package_type"], event.check.output))
    return found


async def test_packages_source_reports_each_kind_after_its_baseline(tmp_path: Path) -> None:
    dpkg_log, listing, argv = tmp_path / "dpkg.log", tmp_path / "rpms", tmp_path / "rpm-argv"
    dpkg_log.write_text(
        "2026-11-26 19:00:00 install old:amd64 <none> 1\n2026-11-26 19:00:00 status installed old:amd64 1\n"
    )
    listing.write_text("bash\t5.1-1\tx86_64\nzsh\t5.8-1\tx86_64\n")
    rpm = tmp_path / "rpm"
    rpm.write_text(RPM_SCRIPT.format(argv=argv, listing=listing))
    rpm.chmod(0o755)
    site, node_modules = tmp_path / "venv/lib/python3.11/site-packages", tmp_path / "prefix/lib/node_modules"
    _dist_info(site, "already", "1.0")
    _node_package(node_modules, "npm", "9.2.0")
    (node_modules / ".bin").mkdir()
    context = _context(
        tmp_path, dpkg_log=dpkg_log, rpm_db=tmp_path / "rpmdb", package_paths=[tmp_path / "venv", tmp_path / "prefix"],
        package_interval=0.02,
    )  # fmt: skip
    source = PackagesSource(context, rpm_command=str(rpm))
    send, receive = trio.open_memory_channel[Event](10)
    with trio.fail_after(GUARD):
        async with trio.open_nursery() as nursery:
            await nursery.start(source.run, send)
            _append(
                dpkg_log,
                "2026-11-26 19:01:00 install tiny:all <none> 0.1\n2026-11-26 19:01:00 status installed tiny:all 0.1\n",
            )
            listing.write_text("bash\t5.2-1\tx86_64\n")
            _dist_info(site, "Tiny_Probe", "0.1.0")
            _node_package(node_modules, "@scope/left-pad", "1.3.0")
            (node_modules / "broken").mkdir()
            (node_modules / "broken/package.json").write_text("{")
            found = await _outputs(receive, 5)
            _append(dpkg_log, "2026-11-26 19:02:00 remove old:amd64 1 <none>\n")
            (site / "already-1.0.dist-info/METADATA").unlink()
            (site / "already-1.0.dist-info").rmdir()
            removed = await _outputs(receive, 2)
            nursery.cancel_scope.cancel()
    host = "on host web1.example"
    assert found == {
        ("deb", f"Package tiny, version 0.1 has been installed {host}"),
        ("rpm", f"Package zsh, version 5.8-1 has been removed {host}"),
        ("rpm", f"Package bash, version 5.2-1 has been installed {host}"),
        ("python", f"Package Tiny_Probe, version 0.1.0 has been installed {host}"),
        ("node", f"Package @scope/left-pad, version 1.3.0 has been installed {host}"),
    }
    assert removed == {
        ("deb", f"Package old, version 1 has been removed {host}"),
        ("python", f"Package already, version 1.0 has been removed {host}"),
    }
    assert argv.read_text().splitlines() == ["-qa", "--queryformat", "%{NAME}\\t%{VERSION}-%{RELEASE}\\t%{ARCH}\\n"]
    # the broken package.json is counted once, though it is looked at on every look
    assert context.registry.get_sample_value("pipeline_agent_package_bad_records_total", {"type": "node"}) == 1
    assert (
        context.registry.get_sample_value("pipeline_agent_package_changes_total", {"type": "rpm", "action": "removed"})
        == 1
    )


async def test_packages_source_without_rpm_or_dpkg_watches_the_rest(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    site.mkdir()
    context = _context(tmp_path, dpkg_log=tmp_path / "absent.log", package_paths=[site], package_interval=0.02)
    source = PackagesSource(context, rpm_command=str(tmp_path / "no-rpm-here"))
    send, receive = trio.open_memory_channel[Event](10)
    with trio.fail_after(GUARD):
        async with trio.open_nursery() as nursery:
            await nursery.start(source.run, send)
            egg = site / "legacy.egg-info"
            egg.write_text("Metadata-Version: 1.0\nName: legacy\nVersion: 3\n")  # an egg-info file, not a directory
            found = await _outputs(receive, 1)
            nursery.cancel_scope.cancel()
    assert found == {("python", "Package legacy, version 3 has been installed on host web1.example")}

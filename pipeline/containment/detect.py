"""Choose the containment mechanism once per process, from the mounts and two settings.

``PIPELINE_PROCESS_CONTAINMENT``: ``auto`` (default: cgroup v2, then v1 freezer, then v1
pids, then the process-tree fallback), or one of ``cgroup2``, ``cgroup1-freezer``,
``cgroup1-pids``, ``process-tree`` to insist on it (a cgroup mechanism that cannot be used is
then an error at start, not a silent fallback). ``PIPELINE_CGROUP_PARENT``: the cgroup
directory under which the daemon makes its own (default: the daemon's own cgroup in that
hierarchy).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from pipeline.containment.base import Containment, log
from pipeline.containment.cgroup import CGROUP2, FREEZER, PIDS, Cgroup
from pipeline.containment.proctree import ProcessTree
from pipeline.errors import ContainmentError

MECHANISM_VARIABLE = "PIPELINE_PROCESS_CONTAINMENT"
PARENT_VARIABLE = "PIPELINE_CGROUP_PARENT"
MECHANISMS = ("auto", CGROUP2, FREEZER, PIDS, ProcessTree.mechanism)


@dataclass(slots=True, frozen=True)
class Mount:
    mechanism: str
    #: Where the hierarchy is mounted, and which of its cgroups is the mount's root.
    point: Path
    root: str


def cgroup_mounts(mountinfo: str) -> Iterator[Mount]:
    """The cgroup hierarchies we can use, from ``/proc/self/mountinfo`` (see proc(5))."""
    for line in mountinfo.splitlines():
        mount, _, fs = line.partition(" - ")
        fields, fs_fields = mount.split(), fs.split()
        if len(fields) < 5 or len(fs_fields) < 3:
            continue
        options = fs_fields[2].split(",")
        if fs_fields[0] == "cgroup2":
            yield Mount(CGROUP2, Path(fields[4]), fields[3])
        elif fs_fields[0] == "cgroup":
            for controller, mechanism in (("freezer", FREEZER), ("pids", PIDS)):
                if controller in options:
                    yield Mount(mechanism, Path(fields[4]), fields[3])


def own_cgroups(proc_cgroup: str) -> dict[str, str]:
    """Our cgroup path in each hierarchy, by mechanism, from ``/proc/self/cgroup``."""
    paths = {}
    for line in proc_cgroup.splitlines():
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            paths[CGROUP2] = path
        for controller, mechanism in (("freezer", FREEZER), ("pids", PIDS)):
            if controller in controllers.split(","):
                paths[mechanism] = path
    return paths


def candidates(mountinfo: str, proc_cgroup: str, parent: str | None) -> list[tuple[str, Path]]:
    """(mechanism, base directory) in order of preference."""
    own = own_cgroups(proc_cgroup)
    found: dict[str, Path] = {}
    for mount in cgroup_mounts(mountinfo):
        if mount.mechanism in found or mount.mechanism not in own:
            continue
        relative = os.path.relpath(own[mount.mechanism], mount.root)
        base = mount.point if relative.startswith("..") else mount.point / relative
        if parent is not None:
            if not Path(parent).is_relative_to(mount.point):
                continue
            base = Path(parent)
        found[mount.mechanism] = base
    return [(mechanism, found[mechanism]) for mechanism in (CGROUP2, FREEZER, PIDS) if mechanism in found]


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def detect(environ: Mapping[str, str] = os.environ) -> Containment:
    """The mechanism to use, per the settings and what this host allows; logged once."""
    wanted = environ.get(MECHANISM_VARIABLE, "auto") or "auto"
    if wanted not in MECHANISMS:
        raise ContainmentError(MECHANISM_VARIABLE, f"{wanted!r} is not one of {', '.join(MECHANISMS)}")
    reasons = []
    if wanted != ProcessTree.mechanism:
        options = candidates(_read("/proc/self/mountinfo"), _read("/proc/self/cgroup"), environ.get(PARENT_VARIABLE))
        for mechanism, base in options:
            if wanted not in ("auto", mechanism):
                continue
            try:
                chosen: Containment = Cgroup.create(mechanism, base)
            except (OSError, ContainmentError) as exc:
                reasons.append(f"{mechanism} at {base}: {exc}")
                continue
            log.info("process containment", mechanism=chosen.mechanism, cgroup=chosen.location)
            return chosen
        if wanted != "auto":
            raise ContainmentError(
                MECHANISM_VARIABLE, f"{wanted} is not usable here: {'; '.join(reasons) or 'not mounted'}"
            )
        reasons = reasons or ["no cgroup v2, v1 freezer or v1 pids hierarchy mounted"]
    chosen = ProcessTree()
    if reasons:
        log.warning("process containment", mechanism=chosen.mechanism, why="; ".join(reasons))
    else:
        log.info("process containment", mechanism=chosen.mechanism, why=f"{MECHANISM_VARIABLE}={wanted}")
    return chosen

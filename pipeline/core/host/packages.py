"""Packages installed and removed on a host, from what package managers leave behind.

- **deb**: dpkg's log. ``status installed <pkg>:<arch> <version>`` reports an install only after
  an ``install`` or ``upgrade`` line of the same package: dpkg also writes it when it merely
  processes a trigger or starts removing a package. ``remove`` reports a removal, and ``purge``
  too unless the same package's ``remove`` came just before (``dpkg --purge`` writes both).
- **rpm**, **python** and **node**: snapshots (``rpm -qa``, ``*.dist-info``/``*.egg-info``
  metadata, ``package.json`` files) compared by :func:`diff`; a package whose version changed
  is reported installed in its new version.

Nothing here reads a file or runs a command; the ``packages`` source does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from pipeline.core.host_events import host_event
from pipeline.errors import HostRecordError
from pipeline.model import Entity, Event

DEB, RPM, PYTHON, NODE = "deb", "rpm", "python", "node"
INSTALLED, REMOVED = "installed", "removed"
TYPE_LABEL = "package_type"
STATUS = 0

_DPKG_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (?P<action>\S+)(?: (?P<rest>.*))?")
_PYTHON_NAME_RUNS = re.compile(r"[-_.]+")


@dataclass(frozen=True, slots=True)
class Package:
    name: str
    version: str
    arch: str = ""
    #: the site-packages or node_modules directory it is in (python and node)
    location: str = ""


@dataclass(frozen=True, slots=True)
class PackageChange:
    kind: str
    action: str
    package: Package


#: A package manager's packages, keyed so that one key is one installable thing (name and
#: architecture for rpm, directory and name for python and node).
Snapshot = Mapping[str, Package]


def diff(kind: str, before: Snapshot, after: Snapshot) -> list[PackageChange]:
    """What changed from ``before`` to ``after``: removals first, then installs, each by key."""
    removed = [PackageChange(kind, REMOVED, before[key]) for key in sorted(before.keys() - after.keys())]
    installed = [
        PackageChange(kind, INSTALLED, package)
        for key, package in sorted(after.items())
        if key not in before or before[key].version != package.version
    ]
    return removed + installed


def _split_arch(spec: str) -> tuple[str, str]:
    """``libc6:amd64`` as ``(libc6, amd64)``; dpkg before multiarch wrote no architecture."""
    name, _, arch = spec.partition(":")
    return name, arch


@dataclass(slots=True)
class DpkgLog:
    """dpkg log lines in, package changes out (see the module's docstring for the rules)."""

    _installing: set[str] = field(default_factory=set)
    _removed: set[str] = field(default_factory=set)

    def feed(self, line: str) -> PackageChange | None:
        """The change ``line`` reports, if any; raises :class:`HostRecordError` for a line that is
        not ``<date> <time> <action> ...``."""
        match = _DPKG_LINE.fullmatch(line.rstrip("\n"))
        if match is None:
            raise HostRecordError("dpkg log", line, "not a dpkg log line (date time action ...)")
        words = (match["rest"] or "").split()
        action = match["action"]
        if action in ("install", "upgrade") and words:
            self._installing.add(words[0])
            self._removed.discard(words[0])
        elif action == "status" and len(words) == 3 and words[0] == "installed" and words[1] in self._installing:
            self._installing.discard(words[1])
            return self._change(INSTALLED, words[1], words[2])
        elif action in ("remove", "purge") and len(words) >= 2 and words[0] not in self._removed:
            self._removed.add(words[0])
            return self._change(REMOVED, words[0], words[1])
        return None

    @staticmethod
    def _change(action: str, spec: str, version: str) -> PackageChange:
        name, arch = _split_arch(spec)
        return PackageChange(DEB, action, Package(name, version, arch))


#: ``rpm -qa --queryformat`` of :func:`parse_rpm_list`: name, version-release, architecture.
RPM_QUERY_FORMAT = "%{NAME}\\t%{VERSION}-%{RELEASE}\\t%{ARCH}\\n"


def parse_rpm_list(text: str) -> dict[str, Package]:
    """``rpm -qa --queryformat RPM_QUERY_FORMAT`` output as a snapshot keyed ``name.arch``."""
    snapshot = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 3:
            raise HostRecordError("rpm -qa", line, f"line {number}: expected name, version and arch")
        name, version, arch = parts
        snapshot[f"{name}.{arch}"] = Package(name, version, arch)
    return snapshot


def python_key(name: str) -> str:
    """A distribution's name as Python compares them (PEP 503): ``Foo_Bar`` is ``foo-bar``."""
    return _PYTHON_NAME_RUNS.sub("-", name).lower()


def parse_metadata(text: str, where: str) -> tuple[str, str]:
    """``Name`` and ``Version`` of a distribution's ``METADATA`` or ``PKG-INFO`` (headers up to
    the first blank line)."""
    headers: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            break
        key, sep, value = line.partition(":")
        if sep and not key.startswith((" ", "\t")):
            headers.setdefault(key.strip().lower(), value.strip())
    name, version = headers.get("name"), headers.get("version")
    if not name or not version:
        raise HostRecordError(where, text[:200], "metadata without Name and Version")
    return name, version


def parse_package_json(text: str, where: str) -> tuple[str, str]:
    """``name`` and ``version`` of a Node package's ``package.json``."""
    try:
        document = json.loads(text)
    except ValueError as error:
        raise HostRecordError(where, text[:200], f"not JSON ({error})") from None
    name = document.get("name") if isinstance(document, dict) else None
    version = document.get("version") if isinstance(document, dict) else None
    if not isinstance(name, str) or not isinstance(version, str) or not name or not version:
        raise HostRecordError(where, text[:200], "package.json without a name and a version")
    return name, version


def output(change: PackageChange, hostname: str) -> str:
    package = change.package
    return f"Package {package.name}, version {package.version} has been {change.action} on host {hostname}"


def package_event(entity: Entity, change: PackageChange, *, timestamp: int) -> Event:
    """The change event of a package installed or removed on the agent's host, status 0."""
    package = change.package
    hostname = entity.system.hostname or entity.metadata.name
    notes = {"package.name": package.name, "package.version": package.version}
    if package.arch:
        notes["package.arch"] = package.arch
    if package.location:
        notes["package.location"] = package.location
    return host_event(
        entity,
        name=f"package-{change.action}",
        output=output(change, hostname),
        status=STATUS,
        timestamp=timestamp,
        labels={TYPE_LABEL: change.kind},
        annotations=notes,
    )

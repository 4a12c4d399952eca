"""The ``packages`` source: packages installed and removed on the host, as change events.

Every ``interval`` seconds (``SourceSettings.package_interval``, 10 by default) it looks at:

- **deb**: the lines dpkg appended to its log (``dpkg_log``) since the last look. The log is
  kept open, so the end of a rotated log is still read before the new one is opened.
- **rpm**: ``rpm -qa`` over the rpm database (``rpm_db``), compared with the last answer;
  skipped, with one log line, where ``rpm`` is not installed.
- **python**: ``*.dist-info`` and ``*.egg-info`` in the site-packages directories of
  ``package_paths`` (a virtual environment's root names its own ``lib/python*/site-packages``).
- **node**: ``package.json`` of the packages in the ``node_modules`` of ``package_paths`` (a
  directory named ``node_modules``, or a prefix holding ``lib/node_modules``).

What is there when the source starts is the baseline: only what changes afterwards is reported.
Files are read and ``rpm`` is run off the trio loop (in a thread, a subprocess).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import trio
from prometheus_client import CollectorRegistry, Counter

from pipeline.agent.sources.base import Source, SourceContext
from pipeline.core.host.packages import (
    DEB,
    NODE,
    PYTHON,
    RPM,
    RPM_QUERY_FORMAT,
    DpkgLog,
    Package,
    PackageChange,
    Snapshot,
    diff,
    package_event,
    parse_metadata,
    parse_package_json,
    parse_rpm_list,
    python_key,
)
from pipeline.errors import HostRecordError
from pipeline.logs import get_logger
from pipeline.model import Event

log = get_logger("agent.source.packages")

#: Seconds ``rpm -qa`` may take before the look is given up (and counted as failed).
RPM_TIMEOUT = 120.0
_READ_BYTES = 1 << 20


class PackageMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.changes = Counter(
            "pipeline_agent_package_changes", "Packages reported installed or removed", ["type", "action"],
            registry=registry,
        )  # fmt: skip
        self.bad_records = Counter(
            "pipeline_agent_package_bad_records",
            "dpkg log lines, package metadata and rpm lines the packages source could not read",
            ["type"],
            registry=registry,
        )
        self.failures = Counter(
            "pipeline_agent_package_scan_failures", "Looks at a package database that failed", ["type"],
            registry=registry,
        )  # fmt: skip

    def refused(self, kind: str, error: HostRecordError) -> None:
        self.bad_records.labels(kind).inc()
        log.warning("package record refused", type=kind, source=error.source, reason=error.reason, record=error.record)


class Watcher(Protocol):
    kind: str

    async def start(self) -> bool:
        """Takes the baseline; False if this kind of package cannot be watched here."""

    async def changes(self) -> list[PackageChange]:
        """What changed since the last look."""


class DpkgWatcher:
    """Follows dpkg's log from its end at start."""

    kind = DEB

    def __init__(self, path: Path, metrics: PackageMetrics) -> None:
        self.path, self.metrics = path, metrics
        self.parser = DpkgLog()
        self.file: int | None = None
        self.pending = b""

    async def start(self) -> bool:
        if not self.path.exists():
            log.info("dpkg log absent, deb packages not watched", path=str(self.path))
            return False
        self.file = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        os.lseek(self.file, 0, os.SEEK_END)
        return True

    async def changes(self) -> list[PackageChange]:
        lines = await trio.to_thread.run_sync(self._new_lines)
        found = []
        for line in lines:
            try:
                change = self.parser.feed(line)
            except HostRecordError as error:
                self.metrics.refused(DEB, error)
                continue
            if change is not None:
                found.append(change)
        return found

    def _new_lines(self) -> list[str]:
        """Complete lines appended since the last call; the rest of a rotated log first."""
        data = self._read_to_end()
        if self._rotated():
            assert self.file is not None
            os.close(self.file)
            self.file = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            data += self._read_to_end()
        *lines, self.pending = (self.pending + data).split(b"\n")
        return [line.decode("utf-8", errors="replace") for line in lines if line]

    def _read_to_end(self) -> bytes:
        assert self.file is not None
        chunks = []
        while chunk := os.read(self.file, _READ_BYTES):
            chunks.append(chunk)
        return b"".join(chunks)

    def _rotated(self) -> bool:
        assert self.file is not None
        try:
            now = os.stat(self.path)
        except FileNotFoundError:
            return False  # between logrotate's rename and dpkg's next write: keep the old one
        held = os.fstat(self.file)
        return (now.st_dev, now.st_ino) != (held.st_dev, held.st_ino)

    def close(self) -> None:
        if self.file is not None:
            os.close(self.file)
            self.file = None


class SnapshotWatcher:
    """Compares each look with the last; a look that fails keeps the last one (no changes)."""

    kind: str

    def __init__(self, metrics: PackageMetrics) -> None:
        self.metrics = metrics
        self.snapshot: Snapshot | None = None

    async def look(self) -> Snapshot | None:
        raise NotImplementedError

    async def start(self) -> bool:
        self.snapshot = await self.look()
        return True

    async def changes(self) -> list[PackageChange]:
        after = await self.look()
        if after is None:
            return []
        before, self.snapshot = self.snapshot, after
        # no baseline yet (the first look failed): this one is the baseline
        return [] if before is None else diff(self.kind, before, after)


class RpmWatcher(SnapshotWatcher):
    kind = RPM

    def __init__(self, database: Path, metrics: PackageMetrics, *, command: str = "rpm") -> None:
        super().__init__(metrics)
        self.database, self.command = database, command

    async def start(self) -> bool:
        if shutil.which(self.command) is None:
            log.info("rpm not installed, rpm packages not watched", command=self.command)
            return False
        return await super().start()

    async def look(self) -> Snapshot | None:
        argv = [self.command, "-qa", "--queryformat", RPM_QUERY_FORMAT]
        if self.database.exists():
            argv[1:1] = ["--dbpath", str(self.database)]
        with trio.move_on_after(RPM_TIMEOUT) as scope:
            done = await trio.run_process(argv, capture_stdout=True, capture_stderr=True, check=False)
        if scope.cancelled_caught or done.returncode != 0:
            self.metrics.failures.labels(RPM).inc()
            error = "timed out" if scope.cancelled_caught else done.stderr.decode(errors="replace")[-300:]
            log.warning("rpm query failed", command=" ".join(argv), error=error)
            return None
        try:
            return parse_rpm_list(done.stdout.decode("utf-8", errors="replace"))
        except HostRecordError as error:
            self.metrics.refused(RPM, error)
            return None


class FilesWatcher(SnapshotWatcher):
    """Python distributions or Node packages found under ``paths``, read in a thread. A file that
    does not parse is counted and logged once (it is looked at again every time)."""

    def __init__(self, kind: str, paths: list[Path], metrics: PackageMetrics) -> None:
        super().__init__(metrics)
        self.kind, self.paths = kind, paths
        self.refused: set[str] = set()

    async def look(self) -> Snapshot:
        scan = scan_python if self.kind == PYTHON else scan_node
        snapshot, errors = await trio.to_thread.run_sync(scan, self.paths)
        for error in errors:
            if error.source not in self.refused:
                self.refused.add(error.source)
                self.metrics.refused(self.kind, error)
        return snapshot


Scan = tuple[dict[str, Package], list[HostRecordError]]


def site_directories(paths: list[Path]) -> Iterator[Path]:
    for path in paths:
        yield path
        yield from sorted(path.glob("lib/python*/site-packages"))


def _python_metadata(entry: Path) -> Path | None:
    if entry.suffix == ".dist-info":
        return entry / "METADATA"
    if entry.suffix == ".egg-info":
        return entry / "PKG-INFO" if entry.is_dir() else entry
    return None


def scan_python(paths: list[Path]) -> Scan:
    """The distributions of the site-packages directories of ``paths``. A distribution whose
    metadata is not written yet (pip is installing it) is left for the next look."""
    found: dict[str, Package] = {}
    errors = []
    for directory in site_directories(paths):
        for entry in _entries(directory):
            metadata = _python_metadata(entry)
            text = _read(metadata) if metadata is not None else None
            if metadata is None or text is None:
                continue
            try:
                name, version = parse_metadata(text, str(metadata))
            except HostRecordError as error:
                errors.append(error)
                continue
            found[f"{directory}/{python_key(name)}"] = Package(name, version, location=str(directory))
    return found, errors


def node_directories(paths: list[Path]) -> Iterator[Path]:
    for path in paths:
        yield from (path,) if path.name == "node_modules" else (path / "lib/node_modules", path / "node_modules")


def _node_packages(directory: Path) -> Iterator[Path]:
    """``<name>`` and ``@scope/<name>`` directories of a node_modules (not ``.bin``)."""
    for entry in _entries(directory):
        if entry.name.startswith("@"):
            yield from (inner for inner in _entries(entry) if not inner.name.startswith("."))
        elif not entry.name.startswith("."):
            yield entry


def scan_node(paths: list[Path]) -> Scan:
    """The packages in the node_modules directories of ``paths``."""
    found: dict[str, Package] = {}
    errors = []
    for directory in node_directories(paths):
        for package in _node_packages(directory):
            manifest = package / "package.json"
            text = _read(manifest)
            if text is None:
                continue
            try:
                name, version = parse_package_json(text, str(manifest))
            except HostRecordError as error:
                errors.append(error)
                continue
            found[f"{directory}/{name}"] = Package(name, version, location=str(directory))
    return found, errors


def _entries(directory: Path) -> list[Path]:
    try:
        return sorted(directory.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []


def _read(path: Path) -> str | None:
    """The text of ``path``, None if it is not there (yet, or any more)."""
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None


class PackagesSource:
    """Reports every package installed or removed after it started."""

    name = "packages"

    def __init__(
        self,
        context: SourceContext,
        *,
        rpm_command: str = "rpm",
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        settings = context.settings
        self.context, self.interval, self.wall_clock = context, settings.package_interval, wall_clock
        self.metrics = PackageMetrics(context.registry)
        paths = list(settings.package_paths)
        self.watchers: list[Watcher] = [
            DpkgWatcher(settings.dpkg_log, self.metrics),
            RpmWatcher(settings.rpm_db, self.metrics, command=rpm_command),
            FilesWatcher(PYTHON, paths, self.metrics),
            FilesWatcher(NODE, paths, self.metrics),
        ]

    async def run(
        self, send: trio.MemorySendChannel[Event], *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        try:
            active = [watcher for watcher in self.watchers if await watcher.start()]
            log.info("watching packages", types=",".join(w.kind for w in active), interval=self.interval)
            task_status.started()
            while True:
                await trio.sleep(self.interval)
                for watcher in active:
                    for change in await watcher.changes():
                        await send.send(self._report(change))
        finally:
            for watcher in self.watchers:
                if isinstance(watcher, DpkgWatcher):
                    watcher.close()

    def _report(self, change: PackageChange) -> Event:
        self.metrics.changes.labels(change.kind, change.action).inc()
        package = change.package
        log.info("package " + change.action, type=change.kind, package=package.name, version=package.version)
        return package_event(self.context.entity, change, timestamp=int(self.wall_clock()))


def make(context: SourceContext) -> Source:
    return PackagesSource(context)

"""Where the agent's host sources look: a plain record apart from the sources themselves, so
that ``pipeline agent --help`` shows its defaults without importing trio or any source."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(slots=True)
class SourceSettings:
    """Where the host sources look; every path can be moved (tests, containers, other distros)."""

    docker_socket: Path = Path("/var/run/docker.sock")
    kubeconfig: Path | None = None
    #: Python environments (site-packages) and Node prefixes (global node_modules) to watch
    package_paths: list[Path] = field(default_factory=list)
    #: seconds between two looks of the packages source at the package databases
    package_interval: float = 10.0
    kmsg_path: Path = Path("/dev/kmsg")
    dpkg_log: Path = Path("/var/log/dpkg.log")
    rpm_db: Path = Path("/var/lib/rpm")
    #: where a source keeps its resume point across restarts (None: in memory only)
    state_dir: Path | None = None

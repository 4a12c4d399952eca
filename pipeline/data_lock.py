"""One daemon to a data directory: an exclusive lock (``flock``) held while it runs.

Two backends on one ``--data`` (``pipeline up`` in one terminal and ``pipeline backend`` in
another, both on the default ``./data``) shared one intake journal: the second's replay stored
the first's pending records and deleted the segment the first was still appending to, whose
later records, answered 201, a crash of the first would then lose; both could append to the
next segment. The second now refuses to start, naming the directory and the process that holds
it (an agent's spool has had its own lock: :mod:`pipeline.agent.spool_log`). The lock goes with
the process (a ``kill -9`` releases it); its descriptor is not inherited by the commands the
daemon runs.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from pipeline.errors import DataDirInUse


class DataDirLock:
    """``<directory>/<role>.lock``, held from :meth:`acquire` to :meth:`release`."""

    def __init__(self, directory: Path, role: str) -> None:
        self.directory = directory
        self.role = role
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock (creating the directory); DataDirInUse when another process holds it."""
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory / f"{self.role}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip()
            os.close(fd)
            raise DataDirInUse(self.directory, self.role, holder) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    @property
    def fd(self) -> int | None:
        """The lock's descriptor while held: a helper process given it holds the lock until it
        ends too (the backend's front process, :mod:`pipeline.backend.front`)."""
        return self._fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # the file stays: removing it would race with the next holder
            self._fd = None

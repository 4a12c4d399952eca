"""One daemon to a data directory: the second is refused, naming the directory and the holder."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

from pipeline.data_lock import DataDirLock
from pipeline.errors import DataDirInUse


def test_a_second_holder_is_refused_until_the_first_releases(tmp_path: Path) -> None:
    first, second = DataDirLock(tmp_path / "data", "backend"), DataDirLock(tmp_path / "data", "backend")
    first.acquire()
    with pytest.raises(DataDirInUse, match=f"data is in use by process {os.getpid()} \\(its backend lock\\)"):
        second.acquire()
    other_role = DataDirLock(tmp_path / "data", "other")
    other_role.acquire()  # another role, another lock
    other_role.release()
    first.release()
    second.acquire()  # released: taken
    second.release()


def test_the_lock_is_not_inherited_by_the_commands_a_daemon_runs(tmp_path: Path) -> None:
    lock = DataDirLock(tmp_path, "backend")
    lock.acquire()
    assert lock._fd is not None
    assert fcntl.fcntl(lock._fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC  # a handler outliving the daemon would hold it
    lock.release()

"""Unpack a verified asset archive into a directory, safely. Blocking: run it in a thread.

tar (plain, gzip, bzip2, xz) and zip are read by their first bytes, not their names. Nothing may
land outside the target: tar members go through Python's ``data`` filter (no absolute paths, no
``..``, no links pointing out, no devices), zip members are checked the same way and links are
not made. The sum of the members' sizes and their number are limited, so that a small archive
cannot fill the disk.
"""

from __future__ import annotations

import os
import stat
import tarfile
import zipfile
from pathlib import Path

#: What one asset may unpack to, at most.
MAX_UNPACKED_BYTES = 1024 * 1024 * 1024
MAX_MEMBERS = 100_000


class UnpackError(ValueError):
    """The archive is not one pipeline unpacks, or it breaks a rule (the message says which)."""


def unpack(archive: Path, target: Path, max_bytes: int = MAX_UNPACKED_BYTES) -> None:
    """Unpack ``archive`` into ``target`` (created; must not exist)."""
    with archive.open("rb") as file:
        head = file.read(512)
    target.mkdir(parents=True)
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        _unzip(archive, target, max_bytes)
    elif head.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")) or head[257:262] == b"ustar":
        _untar(archive, target, max_bytes)
    else:
        raise UnpackError("not a tar, tar.gz, tar.bz2, tar.xz or zip archive")


def _untar(archive: Path, target: Path, max_bytes: int) -> None:
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            members = tar.getmembers()
            _check_sizes(len(members), sum(m.size for m in members if m.isfile()), max_bytes)
            for member in members:
                tar.extract(member, target, filter="data")
    except tarfile.FilterError as exc:
        raise UnpackError(f"refused member: {exc}") from None
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise UnpackError(f"broken tar archive: {exc}") from None


def _unzip(archive: Path, target: Path, max_bytes: int) -> None:
    root = target.resolve()
    try:
        with zipfile.ZipFile(archive) as zipped:
            infos = zipped.infolist()
            _check_sizes(len(infos), sum(i.file_size for i in infos), max_bytes)
            for info in infos:
                mode = info.external_attr >> 16
                if stat.S_ISLNK(mode):
                    raise UnpackError(f"refused member {info.filename!r}: links are not unpacked from zip")
                destination = (root / info.filename).resolve()
                if info.filename.startswith("/") or not destination.is_relative_to(root):
                    raise UnpackError(f"refused member {info.filename!r}: outside the asset's directory")
                zipped.extract(info, root)
                if mode & 0o111 and not info.is_dir():
                    os.chmod(destination, 0o755)  # zip keeps the executable bit only in its unix attributes
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise UnpackError(f"broken zip archive: {exc}") from None


def _check_sizes(members: int, total: int, max_bytes: int) -> None:
    if members > MAX_MEMBERS:
        raise UnpackError(f"{members} members, more than {MAX_MEMBERS}")
    if total > max_bytes:
        raise UnpackError(f"unpacks to {total} bytes, more than {max_bytes}")

"""The queue of the agent's spool: an append-only log of segment files.

Each write appends its events, and the removals since the last write, to the newest segment in
one ``write(2)`` without ``fsync``: what is written survives the agent being killed (the kernel
has it), not the machine losing power, as SQLite's WAL at ``synchronous=NORMAL`` did before.
A SQLite transaction for a batch of one to four results (what four clients make) cost 25-50 µs
a result; an append costs 3-4 (issue 19, ``BENCHMARKS.md``). Which events are queued is kept in
memory (their id, size and place, not their bytes) and rebuilt from the log at start.

A segment that reaches :data:`SEGMENT_BYTES` is closed and synced to disk in a worker thread
(:meth:`SpoolLog.sync`, as the agent syncs everything else slow), and the next write starts a
new one. The oldest segments are deleted once none of their events is queued, oldest first: a
removal is always recorded in the same or a later segment than its event, so it outlives it.

Records: a header (type, body length, CRC-32 of the body), then the body:

- ``EVENT``: seq, id, the event's msgpack bytes;
- ``REMOVED``: the seqs of events that left (acknowledged, set aside, or dropped for room).

A record cut short at the end of the newest segment (the agent killed in the middle of a
write) is cut off when the log is opened. A record that fails its check anywhere else ends the
reading of its segment; :meth:`SpoolLog.open` reports it, naming the file and the offset.
"""

from __future__ import annotations

import contextlib
import os
import struct
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import StoreError

#: A segment takes writes until it is this large; the next write starts a new one.
SEGMENT_BYTES = 4 * 1024 * 1024

EVENT, REMOVED = 1, 2
#: type, body length, CRC-32 of the body
HEADER = struct.Struct("<BII")
#: an EVENT body's start: seq, length of the id (UTF-8); then the id, then the event
EVENT_HEAD = struct.Struct("<QH")
SEQ = struct.Struct("<Q")
SUFFIX = ".seg"


@dataclass(slots=True)
class Entry:
    """A queued event: where its bytes are."""

    id: str
    size: int
    #: the first seq of its segment (the file's name); its bytes at ``offset`` there
    segment: int
    offset: int
    #: its bytes, for a log kept in memory only
    blob: bytes | None = None


@dataclass(slots=True)
class Segment:
    first_seq: int
    path: Path | None
    fd: int = -1
    size: int = 0
    #: events of this segment still queued
    live: int = 0


@dataclass(slots=True)
class Recovery:
    """What opening the log found wrong, for the caller to log: (file, offset, what)."""

    cut: list[tuple[str, int, str]] = field(default_factory=list)
    #: segments damaged before their end (what follows the damage is lost)
    damaged: int = 0


def _event_record(seq: int, event_id: str, blob: bytes) -> tuple[bytes, int]:
    """The record, and where the event's bytes start in it."""
    idb = event_id.encode()
    body = EVENT_HEAD.pack(seq, len(idb)) + idb + blob
    return HEADER.pack(EVENT, len(body), zlib.crc32(body)) + body, HEADER.size + EVENT_HEAD.size + len(idb)


def _removed_record(seqs: Sequence[int]) -> bytes:
    body = struct.pack(f"<{len(seqs)}Q", *seqs)
    return HEADER.pack(REMOVED, len(body), zlib.crc32(body)) + body


def _records(data: bytes) -> Iterator[tuple[int, int, memoryview]]:
    """(offset, type, body) of each whole record, in order; stops at the first that is cut short
    or fails its check (the caller compares the offset reached with the length)."""
    view = memoryview(data)
    at = 0
    while at + HEADER.size <= len(data):
        kind, length, crc = HEADER.unpack_from(data, at)
        end = at + HEADER.size + length
        if kind not in (EVENT, REMOVED) or end > len(data):
            return
        body = view[at + HEADER.size : end]
        if zlib.crc32(body) != crc:
            return
        yield at, kind, body
        at = end


class SpoolLog:
    """The queued events, in seq order, in segment files under ``directory`` (None: in memory)."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self.entries: dict[int, Entry] = {}
        self.by_id: dict[str, int] = {}
        self.bytes = 0
        self.last_seq = 0
        self._segments: dict[int, Segment] = {}  # by first seq, oldest first
        self._active: Segment | None = None
        #: segments closed and not yet synced to disk
        self._unsynced: list[Segment] = []
        #: the lowest seq that may still be queued (the queue's front, found lazily)
        self._low = 1

    # -- opening and closing --------------------------------------------------------------------

    def open(self) -> Recovery:
        recovery = Recovery()
        if self.directory is None:
            return recovery
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            paths = sorted(self.directory.glob("*" + SUFFIX))
            for index, path in enumerate(paths):
                self._read_segment(path, last=index == len(paths) - 1, recovery=recovery)
        except OSError as exc:
            raise StoreError(f"{self.directory}: cannot open the spool: {exc}") from exc
        for entry in self.entries.values():
            self._segments[entry.segment].live += 1
        self._low = min(self.entries, default=self.last_seq + 1)
        # The newest stays until the next write starts one of its own: its name keeps the seqs
        # going up across restarts, as SQLite's AUTOINCREMENT did.
        self._active = self._segments[max(self._segments)] if self._segments else None
        self._retire()
        self._active = None
        return recovery

    def _read_segment(self, path: Path, *, last: bool, recovery: Recovery) -> None:
        try:
            first_seq = int(path.name.removesuffix(SUFFIX))
        except ValueError:
            recovery.cut.append((str(path), 0, "not a segment name: left alone"))
            return
        data = path.read_bytes()
        segment = Segment(first_seq, path, os.open(path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC), len(data))
        self._segments[first_seq] = segment
        self.last_seq = max(self.last_seq, first_seq - 1)
        reached = 0
        for at, kind, body in _records(data):
            reached = at + HEADER.size + len(body)
            if kind == EVENT:
                seq, id_length = EVENT_HEAD.unpack_from(body)
                event_id = bytes(body[EVENT_HEAD.size : EVENT_HEAD.size + id_length]).decode()
                start = EVENT_HEAD.size + id_length
                self._add(seq, Entry(event_id, len(body) - start, first_seq, at + HEADER.size + start))
            else:
                for (seq,) in SEQ.iter_unpack(body):
                    self.last_seq = max(self.last_seq, seq)
                    self._drop(seq)
        if reached < len(data):
            if last:  # the agent stopped in the middle of a write: what follows was never answered
                os.ftruncate(segment.fd, reached)
                segment.size = reached
                cut = len(data) - reached
                recovery.cut.append((str(path), reached, f"a record cut short at the end: {cut} bytes cut off"))
            else:
                recovery.cut.append((str(path), reached, "a damaged record: the rest of the segment not read"))
                recovery.damaged += 1

    def _add(self, seq: int, entry: Entry) -> None:
        old = self.entries.pop(seq, None)
        if old is not None:  # the same seq twice cannot be written; counted once all the same
            self.bytes -= old.size
            self.by_id.pop(old.id, None)
        self.entries[seq] = entry
        self.by_id[entry.id] = seq
        self.bytes += entry.size
        self.last_seq = max(self.last_seq, seq)

    def _drop(self, seq: int) -> Entry | None:
        entry = self.entries.pop(seq, None)
        if entry is not None:
            self.bytes -= entry.size
            if self.by_id.get(entry.id) == seq:
                del self.by_id[entry.id]
        return entry

    def close(self) -> None:
        """Close every segment, the newest synced first (a clean stop leaves it all on disk)."""
        if self._active is not None and self._active.fd >= 0:
            with contextlib.suppress(OSError):
                os.fdatasync(self._active.fd)
        for segment in self._segments.values():
            if segment.fd >= 0:
                os.close(segment.fd)
                segment.fd = -1
        self._segments.clear()
        self._active = None
        self._unsynced.clear()

    # -- writing ----------------------------------------------------------------------------------

    def append(self, removed: Sequence[int], events: Sequence[tuple[int, str, bytes]]) -> None:
        """Record ``removed`` (seqs) as gone and ``events`` (seq, id, bytes) as queued, in one write."""
        segment = self._writable()
        parts = [_removed_record(removed)] if removed else []
        at = segment.size + (len(parts[0]) if parts else 0)
        added = []
        for seq, event_id, blob in events:
            record, start = _event_record(seq, event_id, blob)
            parts.append(record)
            added.append((seq, Entry(event_id, len(blob), segment.first_seq, at + start,
                                     blob if segment.path is None else None)))  # fmt: skip
            at += len(record)
        self._write(segment, b"".join(parts))
        self._forget(removed)
        for seq, entry in added:
            self._add(seq, entry)
        segment.live += len(added)
        self._retire()

    def remove(self, seqs: Iterable[int]) -> list[Entry]:
        """Record the queued events of ``seqs`` as gone; returns their entries."""
        queued = [seq for seq in seqs if seq in self.entries]
        if not queued:
            return []
        self._write(self._writable(), _removed_record(queued))
        gone = self._forget(queued)
        self._retire()
        return gone

    def _forget(self, seqs: Sequence[int]) -> list[Entry]:
        gone = []
        for seq in seqs:
            entry = self._drop(seq)
            if entry is not None:
                self._segments[entry.segment].live -= 1
                gone.append(entry)
        return gone

    def _writable(self) -> Segment:
        active = self._active
        if active is not None and active.size < SEGMENT_BYTES:
            return active
        if active is not None and active.path is not None:
            self._unsynced.append(active)
        first_seq = self.last_seq + 1
        path = None if self.directory is None else self.directory / f"{first_seq:020d}{SUFFIX}"
        segment = self._segments.get(first_seq)
        if segment is None:  # (a segment of that name holds only removals: appended to)
            segment = Segment(first_seq, path)
            if path is not None:
                try:
                    segment.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
                except OSError as exc:
                    raise StoreError(f"{path}: cannot start a spool segment: {exc}") from exc
            self._segments[first_seq] = segment
        self._active = segment
        return segment

    def _write(self, segment: Segment, data: bytes) -> None:
        if segment.fd < 0:  # in memory
            segment.size += len(data)
            return
        try:
            written = 0
            while written < len(data):
                written += os.write(segment.fd, data[written:] if written else data)
        except OSError as exc:
            with contextlib.suppress(OSError):  # a partial record would end the reading there
                os.ftruncate(segment.fd, segment.size)
            raise StoreError(f"{segment.path}: cannot write to the spool: {exc}") from exc
        segment.size += written

    def _retire(self) -> None:
        """Delete the oldest segments whose events have all left, oldest first."""
        while self._segments:
            first_seq, oldest = next(iter(self._segments.items()))
            if oldest is self._active or oldest.live > 0:
                return
            del self._segments[first_seq]
            if oldest in self._unsynced:
                self._unsynced.remove(oldest)
            if oldest.fd >= 0:
                os.close(oldest.fd)
                oldest.fd = -1
            if oldest.path is not None:
                with contextlib.suppress(FileNotFoundError):
                    oldest.path.unlink()

    # -- syncing ----------------------------------------------------------------------------------

    @property
    def wants_sync(self) -> bool:
        return bool(self._unsynced)

    def sync(self) -> None:
        """Sync the closed segments and the directory to disk: slow, so in a worker thread (the
        caller makes sure nothing else uses the log meanwhile)."""
        unsynced, self._unsynced = self._unsynced, []
        try:
            for segment in unsynced:
                if segment.fd >= 0:
                    os.fdatasync(segment.fd)
            if self.directory is not None:
                fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        except OSError as exc:
            raise StoreError(f"{self.directory}: spool sync failed: {exc}") from exc

    # -- reading ----------------------------------------------------------------------------------

    def after(self, seq: int, limit: int) -> list[int]:
        """Up to ``limit`` queued seqs after ``seq``, in order."""
        entries = self.entries
        if seq < self._low:
            while self._low <= self.last_seq and self._low not in entries:
                self._low += 1
            seq = self._low - 1
        found: list[int] = []
        at = seq + 1
        while len(found) < limit and at <= self.last_seq:
            if at in entries:
                found.append(at)
            at += 1
        return found

    def read(self, seq: int) -> bytes:
        entry = self.entries[seq]
        if entry.blob is not None:
            return entry.blob
        segment = self._segments[entry.segment]
        try:
            data = os.pread(segment.fd, entry.size, entry.offset)
        except OSError as exc:
            raise StoreError(f"{segment.path}: cannot read the spool: {exc}") from exc
        if len(data) != entry.size:
            raise StoreError(f"{segment.path}: the spool ends inside event {entry.id} at {entry.offset}")
        return data

    def files(self) -> list[Path]:
        """The segment files, oldest first."""
        return [s.path for s in self._segments.values() if s.path is not None]

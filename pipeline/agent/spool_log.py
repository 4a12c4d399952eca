"""The queue of the agent's spool: an append-only log of segment files.

Each write appends its events (after a record of the oldest dropped to make room for them, if
any) to the newest segment in one ``write(2)`` without ``fsync``, and each acknowledgement its
record of the events that left: what is written survives the agent being killed (the kernel
has it), not the machine losing power, as SQLite's WAL at ``synchronous=NORMAL`` did before.
A SQLite transaction for a batch of one to four results (what four clients make) cost 25-50 µs
a result; an append costs 3-4 (issue 19, ``BENCHMARKS.md``). Which events are queued is kept in
memory, rebuilt from the log at start: two machine words an event (its size, and where its
record starts), in arrays indexed by seq, so that a full spool of small events holds a few MB
of memory, not a Python object per event (a dict of records took 345 bytes an event, 90 MB for
256 MiB of 1 KB events). Ids and bytes are read back from the record when needed.

A segment that reaches :data:`SEGMENT_BYTES` is closed and synced to disk in a worker thread
(:meth:`SpoolLog.sync`, as the agent syncs everything else slow), and the next write starts a
new one. The oldest segments are deleted once none of their events is queued, oldest first: a
removal is always recorded in the same or a later segment than its event, so it outlives it.

Records: a header (type, body length, CRC-32 of the body seeded with the type), then the body:

- ``EVENT``: seq, id, the event's msgpack bytes;
- ``REMOVED``: the seqs of events that left (acknowledged, set aside, or dropped for room).

A record cut short at the end of the newest segment (the agent killed in the middle of a
write) is cut off when the log is opened. A record that fails its check anywhere else ends the
reading of its segment; :meth:`SpoolLog.open` reports it, naming the file and the offset.
"""

from __future__ import annotations

import bisect
import contextlib
import fcntl
import os
import struct
import zlib
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import StoreError

#: A segment takes writes until it is this large; the next write starts a new one.
SEGMENT_BYTES = 4 * 1024 * 1024

EVENT, REMOVED = 1, 2
#: type, body length, CRC-32 of the body (seeded with the type)
HEADER = struct.Struct("<BII")
#: an EVENT body's start: seq, length of the id (UTF-8); then the id, then the event
EVENT_HEAD = struct.Struct("<QH")
#: An id longer than its length field holds cannot be written (events carry a UUID's 36 bytes).
MAX_ID_BYTES = 0xFFFF
SEQ = struct.Struct("<Q")
SUFFIX = ".seg"
LOCK_FILE = "lock"


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


def _crc(kind: int, body: bytes | memoryview) -> int:
    """A record's check: its type as well as its body (a damaged type byte would read an event's
    body as removals)."""
    return zlib.crc32(body, kind)


def _event_record(seq: int, event_id: str, blob: bytes) -> tuple[bytes, int]:
    """The record, and where the event's bytes start in it."""
    idb = event_id.encode()
    body = EVENT_HEAD.pack(seq, len(idb)) + idb + blob
    return HEADER.pack(EVENT, len(body), _crc(EVENT, body)) + body, HEADER.size + EVENT_HEAD.size + len(idb)


def _removed_record(seqs: Sequence[int]) -> bytes:
    body = struct.pack(f"<{len(seqs)}Q", *seqs)
    return HEADER.pack(REMOVED, len(body), _crc(REMOVED, body)) + body


def _well_formed(kind: int, body: memoryview) -> bool:
    if kind == REMOVED:
        return len(body) % SEQ.size == 0
    return len(body) >= EVENT_HEAD.size and EVENT_HEAD.unpack_from(body)[1] <= len(body) - EVENT_HEAD.size


def _records(data: bytes) -> Iterator[tuple[int, int, memoryview]]:
    """(offset, type, body) of each whole record, in order; stops at the first that is cut short,
    fails its check or is not the shape of its type (the caller compares the offset reached with
    the length)."""
    view = memoryview(data)
    at = 0
    while at + HEADER.size <= len(data):
        kind, length, crc = HEADER.unpack_from(data, at)
        end = at + HEADER.size + length
        if kind not in (EVENT, REMOVED) or end > len(data):
            return
        body = view[at + HEADER.size : end]
        if _crc(kind, body) != crc or not _well_formed(kind, body):
            return
        yield at, kind, body
        at = end


class SpoolLog:
    """The queued events, in seq order, in segment files under ``directory`` (None: in memory)."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self.count = 0
        self.bytes = 0
        self.last_seq = 0
        #: the seq at index 0 of the arrays, and the index of the first event that may be queued
        self._base = 1
        self._front = 0
        #: by seq - _base: the event's bytes (-1: not queued), and (record offset << 16 | id length)
        self._sizes = array("q")
        self._places = array("q")
        #: (id, bytes) of each queued event, for a log kept in memory only
        self._memory: dict[int, tuple[str, bytes]] = {}
        self._segments: dict[int, Segment] = {}  # by first seq, oldest first
        self._firsts: list[int] = []  # their first seqs, for finding an event's segment
        self._active: Segment | None = None
        #: segments closed and not yet synced to disk
        self._unsynced: list[Segment] = []
        self._lock_fd = -1

    # -- opening and closing --------------------------------------------------------------------

    def open(self) -> Recovery:
        recovery = Recovery()
        if self.directory is None:
            return recovery
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._lock()
            paths = sorted(self.directory.glob("*" + SUFFIX))
            for index, path in enumerate(paths):
                self._read_segment(path, last=index == len(paths) - 1, recovery=recovery)
        except OSError as exc:
            raise StoreError(f"{self.directory}: cannot open the spool: {exc}") from exc
        if not self._sizes:
            self._base = self.last_seq + 1
        # The newest stays until the next write starts one of its own: its name keeps the seqs
        # going up across restarts, as SQLite's AUTOINCREMENT did.
        self._active = self._segments[self._firsts[-1]] if self._firsts else None
        self._retire()
        self._active = None
        return recovery

    def _lock(self) -> None:
        """One writer: a second agent appending to the same segments would corrupt them."""
        assert self.directory is not None
        fd = os.open(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreError(f"{self.directory}: the spool is in use by another process (another agent "
                             f"with the same data directory?)") from None  # fmt: skip
        self._lock_fd = fd

    def _read_segment(self, path: Path, *, last: bool, recovery: Recovery) -> None:
        try:
            first_seq = int(path.name.removesuffix(SUFFIX))
        except ValueError:
            recovery.cut.append((str(path), 0, "not a segment name: left alone"))
            return
        data = path.read_bytes()
        segment = Segment(first_seq, path, os.open(path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC), len(data))
        self._add_segment(segment)
        self.last_seq = max(self.last_seq, first_seq - 1)
        reached = 0
        for at, kind, body in _records(data):
            reached = at + HEADER.size + len(body)
            if kind == EVENT:
                seq, id_length = EVENT_HEAD.unpack_from(body)
                if not self._sizes:
                    self._base = seq
                if self._queue(seq, len(body) - EVENT_HEAD.size - id_length, at, id_length):
                    segment.live += 1
            else:
                for (seq,) in SEQ.iter_unpack(body):
                    self.last_seq = max(self.last_seq, seq)
                    self._unqueue(seq)
        if reached < len(data):
            if last:  # the agent stopped in the middle of a write: what follows was never answered
                os.ftruncate(segment.fd, reached)
                segment.size = reached
                cut = len(data) - reached
                recovery.cut.append((str(path), reached, f"a record cut short at the end: {cut} bytes cut off"))
            else:
                recovery.cut.append((str(path), reached, "a damaged record: the rest of the segment not read"))
                recovery.damaged += 1

    def _add_segment(self, segment: Segment) -> None:
        self._segments[segment.first_seq] = segment
        self._firsts.append(segment.first_seq)

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
        self._firsts.clear()
        self._active = None
        self._unsynced.clear()
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # the lock goes with it
            self._lock_fd = -1

    # -- the index --------------------------------------------------------------------------------

    def _queue(self, seq: int, size: int, record_offset: int, id_length: int) -> bool:
        """Put ``seq`` in the queue; False: below its front (never written so: left out)."""
        index = seq - self._base
        if index < 0:
            return False
        if index < len(self._sizes):  # the same seq again (never written so): counted once
            self._unqueue(seq)
        if index > len(self._sizes):  # seqs that never reached the log (a damaged segment)
            gap = index - len(self._sizes)
            self._sizes.extend(array("q", [-1]) * gap)
            self._places.extend(array("q", [0]) * gap)
        if index == len(self._sizes):
            self._sizes.append(size)
            self._places.append(record_offset << 16 | id_length)
        else:
            self._sizes[index] = size
            self._places[index] = record_offset << 16 | id_length
        self.count += 1
        self.bytes += size
        self.last_seq = max(self.last_seq, seq)
        return True

    def _unqueue(self, seq: int) -> bool:
        """Take ``seq`` out of the queue; False: it was not in it."""
        index = seq - self._base
        if not 0 <= index < len(self._sizes) or self._sizes[index] < 0:
            return False
        self.count -= 1
        self.bytes -= self._sizes[index]
        self._sizes[index] = -1
        self._memory.pop(seq, None)
        self._segment_of(seq).live -= 1
        return True

    def _segment_of(self, seq: int) -> Segment:
        return self._segments[self._firsts[bisect.bisect_right(self._firsts, seq) - 1]]

    def queued(self, seq: int) -> bool:
        index = seq - self._base
        return 0 <= index < len(self._sizes) and self._sizes[index] >= 0

    def size(self, seq: int) -> int:
        """The bytes of a queued event."""
        return self._sizes[seq - self._base]

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
            added.append((seq, len(blob), at, start - HEADER.size - EVENT_HEAD.size))
            at += len(record)
        self._write(segment, b"".join(parts))
        for seq in removed:
            self._unqueue(seq)
        for seq, size, record_offset, id_length in added:
            if self._queue(seq, size, record_offset, id_length):
                segment.live += 1
        if segment.path is None:
            self._memory.update((seq, (event_id, blob)) for seq, event_id, blob in events)
        self._retire()

    def remove(self, seqs: Iterable[int]) -> int:
        """Record the queued events of ``seqs`` as gone; returns how many were queued."""
        queued = [seq for seq in seqs if self.queued(seq)]
        if not queued:
            return 0
        self._write(self._writable(), _removed_record(queued))
        for seq in queued:
            self._unqueue(seq)
        self._retire()
        return len(queued)

    def _writable(self) -> Segment:
        active = self._active
        if active is not None and active.size < SEGMENT_BYTES:
            return active
        first_seq = self.last_seq + 1
        segment = self._segments.get(first_seq)
        if segment is None:  # (else a segment that holds only removals: appended to)
            path = None if self.directory is None else self.directory / f"{first_seq:020d}{SUFFIX}"
            segment = Segment(first_seq, path)
            if path is not None:
                try:
                    segment.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
                except OSError as exc:
                    raise StoreError(f"{path}: cannot start a spool segment: {exc}") from exc
            self._add_segment(segment)
        if active is not None and active is not segment and active.path is not None:
            self._unsynced.append(active)
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
        """Delete the oldest segments whose events have all left, oldest first, and drop the
        index's front once it is mostly events gone."""
        while self._firsts:
            oldest = self._segments[self._firsts[0]]
            if oldest is self._active or oldest.live > 0:
                break
            del self._segments[oldest.first_seq]
            del self._firsts[0]
            if oldest in self._unsynced:
                self._unsynced.remove(oldest)
            if oldest.fd >= 0:
                os.close(oldest.fd)
                oldest.fd = -1
            if oldest.path is not None:
                with contextlib.suppress(FileNotFoundError):
                    oldest.path.unlink()
        sizes = self._sizes
        while self._front < len(sizes) and sizes[self._front] < 0:
            self._front += 1
        if self._front >= 1024 and self._front * 2 >= len(sizes):  # amortised: each index moved once
            del sizes[: self._front]
            del self._places[: self._front]
            self._base += self._front
            self._front = 0

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
        sizes = self._sizes
        index = max(seq + 1 - self._base, self._front)
        found: list[int] = []
        while len(found) < limit and index < len(sizes):
            if sizes[index] >= 0:
                found.append(index + self._base)
            index += 1
        return found

    def read(self, seq: int) -> tuple[str, bytes]:
        """The id and bytes of a queued event."""
        if seq in self._memory:
            return self._memory[seq]
        index = seq - self._base
        place, size = self._places[index], self._sizes[index]
        offset, id_length = place >> 16, place & 0xFFFF
        head = HEADER.size + EVENT_HEAD.size + id_length
        segment = self._segment_of(seq)
        try:
            data = os.pread(segment.fd, head + size, offset)
        except OSError as exc:
            raise StoreError(f"{segment.path}: cannot read the spool: {exc}") from exc
        if len(data) != head + size:
            raise StoreError(f"{segment.path}: the spool ends inside event seq {seq} at {offset}")
        return data[HEADER.size + EVENT_HEAD.size : head].decode(), data[head:]

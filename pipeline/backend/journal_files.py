"""The intake journal's files: segments of ``<length u32><crc32 u32><record>`` records, written
by the backend's journal (:mod:`pipeline.backend.journal`) and by its front process
(:mod:`pipeline.backend.front`), each in its own directory, and read back at start; and the
journal's metrics."""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge

_HEAD = struct.Struct("<II")


@dataclass(slots=True, frozen=True)
class JournalMetrics:
    appended: Counter
    replayed: Counter
    retries: Counter
    torn: Counter
    failures: Counter
    undecodable: Counter
    barrier_timeouts: Counter
    set_aside: Counter
    set_aside_failures: Counter
    pending: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> JournalMetrics:
        return cls(
            appended=Counter("pipeline_journal_appended", "Events journaled by the HTTP API (answered 201)",
                             registry=registry),
            replayed=Counter("pipeline_journal_replayed",
                             "Journaled events replayed at start (stored then, or dropped as already stored)",
                             registry=registry),
            retries=Counter("pipeline_journal_retries",
                            "Journaled events the store failed to write, offered again", registry=registry),
            torn=Counter("pipeline_journal_torn",
                         "Journal segments that ended on a torn or corrupt record at replay", registry=registry),
            failures=Counter("pipeline_journal_failures",
                             "Events refused (500) because the journal could not be written", registry=registry),
            undecodable=Counter("pipeline_journal_undecodable",
                                "Journal records replayed that no longer decode to an event (dropped)",
                                registry=registry),
            barrier_timeouts=Counter("pipeline_journal_barrier_timeouts",
                                     "Requests served before the events journaled ahead of them were stored",
                                     registry=registry),
            set_aside=Counter("pipeline_journal_set_aside",
                              "Journaled events the store refused for what they hold, set aside as files "
                              "(<data dir>/intake/refused/)", registry=registry),
            set_aside_failures=Counter("pipeline_journal_set_aside_failures",
                                       "Refused events whose file could not be written (kept journaled, tried again)",
                                       registry=registry),
            pending=Gauge("pipeline_journal_pending", "Journaled events not yet stored", registry=registry),
        )  # fmt: skip


def segment_number(path: Path) -> int:
    return int(path.stem.removeprefix("journal-"))


def read_segment(path: Path) -> tuple[list[bytes], bool]:
    """The records of a segment, in order, and whether it ended on a torn or corrupt record."""
    data = path.read_bytes()
    records: list[bytes] = []
    at = 0
    while at < len(data):
        if at + _HEAD.size > len(data):
            return records, True
        length, crc = _HEAD.unpack_from(data, at)
        body = data[at + _HEAD.size : at + _HEAD.size + length]
        if len(body) < length or zlib.crc32(body) != crc:
            return records, True
        records.append(body)
        at += _HEAD.size + length
    return records, False


def open_segment(path: Path) -> int:
    """A new segment's descriptor, for appends only."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)


def framed(record: bytes) -> bytes:
    """``record`` as a segment holds it."""
    return _HEAD.pack(len(record), zlib.crc32(record)) + record


def append(fd: int, data: bytes, size: int) -> None:
    """Append ``data`` (framed records) to the segment ``fd`` of ``size`` bytes, whole or not at
    all (OSError)."""
    written = _write_now(fd, data)
    if written != len(data):  # a partial write (disk full?), or one that failed: the long way
        _write_all(fd, data, size, written)


def _write_now(fd: int, data: bytes) -> int:
    """Bytes of ``data`` one ``write(2)`` takes: all of it nearly always, in a few µs; 0 when it
    fails (the caller goes the long way, which raises)."""
    try:
        return os.write(fd, data)
    except OSError:
        return 0


def _write_all(fd: int, data: bytes, start: int, written: int = 0) -> None:
    """Append the rest of ``data`` after its first ``written`` bytes, or nothing of it (a partial
    write is cut off again, back to ``start``; OSError raised)."""
    view = memoryview(data)[written:]
    try:
        while view:
            view = view[os.write(fd, view) :]
    except OSError:
        os.ftruncate(fd, start)
        raise

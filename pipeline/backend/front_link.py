"""What the backend and its front process (:mod:`pipeline.backend.front`) tell each other.

Two socket pairs join them. The *link*, a stream, carries frames ``<length u32><kind u8><body>``
both ways, in order: from the front each event it journaled (a few milliseconds after its 201
at most, many in one write), each journal segment it closed, its questions about credentials
and its figures; from the backend the count of journaled events done with (stored, dropped or
set aside), its answers, and its requests to send at once what the front holds (before the
backend serves a read, so that the read sees every event answered before it). The *hand-over*
pair, datagrams, carries the connections the front does not serve: each one's descriptor, and
the bytes the front read of it, for the backend to serve from there.
"""

from __future__ import annotations

import array
import os
import socket
import struct
from dataclasses import dataclass
from typing import Any

import msgpack

#: Frame kinds, front to backend.
RECORD = 1  # body: segment u32, then the journal record
SEALED = 2  # body: segment u32 (the front writes no more to it)
ASK = 3  # body: msgpack [question id, authorization, namespace, source address]
FIGURES = 4  # body: msgpack {name: value}
FLUSHED = 5  # body: the number u32 of the FLUSH it answers: every record before it was sent
#: Frame kinds, backend to front.
DONE = 11  # body: count u32 of the front's records done with
ANSWER = 12  # body: question id u32, verdict u8
FLUSH = 13  # body: a number u32, to be answered FLUSHED once every record taken so far is sent

_HEAD = struct.Struct("<IB")
_U32 = struct.Struct("<I")
_ANSWER = struct.Struct("<IB")
#: A frame's bytes, at most: a record holds a body of at most 64 KiB and the path's parts, so a
#: longer frame is a link out of step (a bug), refused before its bytes are gathered.
MAX_FRAME = 1024 * 1024
#: Bytes of a connection's beginning a hand-over carries, at most (a datagram must hold them).
HANDOVER_BYTES = 128 * 1024
#: A hand-over datagram's size, at most: its reason, then those bytes.
DATAGRAM_BYTES = HANDOVER_BYTES + 64


def frame(kind: int, body: bytes) -> bytes:
    return _HEAD.pack(len(body) + 1, kind) + body


def record_frame(segment: int, record: bytes) -> bytes:
    return _HEAD.pack(len(record) + 5, RECORD) + _U32.pack(segment) + record


def sealed_frame(segment: int) -> bytes:
    return frame(SEALED, _U32.pack(segment))


def ask_frame(question: int, authorization: str, namespace: str, source: str) -> bytes:
    return frame(ASK, msgpack.packb([question, authorization, namespace, source]))


def figures_frame(figures: dict[str, int]) -> bytes:
    return frame(FIGURES, msgpack.packb(figures))


def flush_frame(number: int) -> bytes:
    return frame(FLUSH, _U32.pack(number))


def flushed_frame(number: int) -> bytes:
    return frame(FLUSHED, _U32.pack(number))


def done_frame(count: int) -> bytes:
    return frame(DONE, _U32.pack(count))


def answer_frame(question: int, verdict: bool) -> bytes:
    return frame(ANSWER, _ANSWER.pack(question, verdict))


def segment_of(body: bytes) -> tuple[int, bytes]:
    """A RECORD's segment and record."""
    return _U32.unpack_from(body)[0], body[4:]


def count_of(body: bytes) -> int:
    return int(_U32.unpack(body)[0])


def answer_of(body: bytes) -> tuple[int, bool]:
    question, verdict = _ANSWER.unpack(body)
    return question, bool(verdict)


def question_of(body: bytes) -> tuple[int, str, str, str]:
    question, authorization, namespace, source = msgpack.unpackb(body)
    return question, authorization, namespace, source


def figures_of(body: bytes) -> dict[str, Any]:
    figures = msgpack.unpackb(body)
    if not isinstance(figures, dict):
        raise ValueError("figures: not a map")
    return figures


@dataclass(slots=True)
class Frames:
    """Frames out of a stream's bytes, as they come."""

    buffer: bytearray

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """The frames ``data`` completes, in order: (kind, body). ValueError for a frame longer
        than :data:`MAX_FRAME` (the link cannot be read further)."""
        self.buffer += data
        frames: list[tuple[int, bytes]] = []
        at, buffer = 0, self.buffer
        while len(buffer) - at >= _HEAD.size:
            size, kind = _HEAD.unpack_from(buffer, at)
            if size > MAX_FRAME:
                raise ValueError(f"link frame of {size} bytes, more than {MAX_FRAME}")
            end = at + 4 + size
            if end > len(buffer):
                break
            frames.append((kind, bytes(buffer[at + _HEAD.size : end])))
            at = end
        del buffer[:at]
        return frames


def handover_datagram(reason: str, received: bytes) -> bytes:
    """A hand-over's bytes: why, then what the front read of the connection."""
    return reason.encode() + b"\0" + received


def taken_over(data: bytes, ancillary: list[tuple[int, int, bytes]]) -> tuple[int | None, str, bytes]:
    """The descriptor, reason and bytes of a hand-over datagram (None: it carried no descriptor)."""
    fds = array.array("i")
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
    for extra in fds[1:]:  # one a datagram; more would be a bug, never a leak
        os.close(extra)
    reason, _, received = data.partition(b"\0")
    return (fds[0] if fds else None), reason.decode(errors="replace"), received


#: What a hand-over datagram's ancillary data needs, for one descriptor.
ANCILLARY_SPACE = socket.CMSG_SPACE(array.array("i").itemsize)

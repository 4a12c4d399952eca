"""The agent transport's framing, sans I/O.

A connection is a byte stream of frames; each frame is a 4-byte big-endian length followed by
one msgpack map with a ``type`` key: one of the messages of :mod:`pipeline.wire.messages`,
where every type and its fields are listed. :class:`FrameDecoder` is the edge: it refuses a
frame too large, unreadable or nested too deep, and hands out typed messages
(:func:`~pipeline.wire.messages.decode_message`); :func:`encode_frame` frames one.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

import msgpack

from pipeline.errors import MessageError, ProtocolError
from pipeline.wire.messages import (
    MAX_HEARTBEAT_TIMEOUT,
    PROTOCOL_VERSION,
    Message,
    decode_message,
    encode_message,
)

__all__ = [
    "MAX_FRAME_BYTES",
    "MAX_FRAME_DEPTH",
    "MAX_HEARTBEAT_TIMEOUT",
    "PROTOCOL_VERSION",
    "FrameDecoder",
    "MessageError",
    "ProtocolError",
    "check_depth",
    "encode_frame",
    "pack_frame",
]

#: Frames larger than this are a protocol error: the connection is closed, not the daemon.
MAX_FRAME_BYTES = 16 * 1024 * 1024
#: How deep a frame's maps and lists may nest. An event in an ``events`` frame nests about 70
#: deep at most (the model's records, and 64 levels of JSON carried as it is); anything deeper
#: is refused before any code walks it recursively (a ``repr`` of it would raise RecursionError).
MAX_FRAME_DEPTH = 100

_LENGTH = struct.Struct(">I")


def pack_frame(body_map: dict[str, Any]) -> bytes:
    """Any map, framed (what :func:`encode_frame` does for a message; tests frame hostile maps with it)."""
    body: bytes = msgpack.packb(body_map, use_bin_type=True)
    if len(body) > MAX_FRAME_BYTES:
        raise ProtocolError(f"frame of {len(body)} bytes exceeds the limit of {MAX_FRAME_BYTES}")
    return _LENGTH.pack(len(body)) + body


def encode_frame(message: Message) -> bytes:
    """One framed message, ready to write."""
    return pack_frame(encode_message(message))


def check_depth(value: Any, limit: int = MAX_FRAME_DEPTH) -> None:
    """Raise ProtocolError when maps and lists in ``value`` nest deeper than ``limit`` (walked
    with a stack of its own, not by recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()  # keys are strings: strict_map_key
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            raise ProtocolError(f"frame nested deeper than {limit} levels")
        stack.extend((child, depth + 1) for child in children)


@dataclass(slots=True)
class FrameDecoder:
    """Accumulates received bytes and yields complete messages."""

    max_frame_bytes: int = MAX_FRAME_BYTES
    _buffer: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> list[Message]:
        """Add received bytes; return every message now complete, in order, decoded and checked."""
        self._buffer += data
        messages = []
        buffer = self._buffer
        start = 0
        while len(buffer) - start >= _LENGTH.size:
            (length,) = _LENGTH.unpack_from(buffer, start)
            if length > self.max_frame_bytes:
                raise ProtocolError(f"frame of {length} bytes exceeds the limit of {self.max_frame_bytes}")
            end = start + _LENGTH.size + length
            if len(buffer) < end:
                break
            body = memoryview(buffer)[start + _LENGTH.size : end]
            start = end
            try:
                decoded = msgpack.unpackb(body, raw=False, strict_map_key=True)
            except (ValueError, msgpack.UnpackException) as exc:
                raise ProtocolError(f"malformed msgpack frame: {exc}") from None
            finally:
                body.release()
            check_depth(decoded)
            messages.append(decode_message(decoded))
        del buffer[:start]  # consumed frames are dropped once per feed, not once per frame
        return messages

    @property
    def pending_bytes(self) -> int:
        return len(self._buffer)

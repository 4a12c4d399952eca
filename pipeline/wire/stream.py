"""Framed messages over a trio stream: the thin I/O half of :mod:`pipeline.wire.protocol`."""

from __future__ import annotations

from collections import deque

import trio

from pipeline.errors import ProtocolError
from pipeline.wire.messages import Message
from pipeline.wire.protocol import FrameDecoder, encode_frame

_RECEIVE_BYTES = 65536


class MessageStream:
    """Send and receive protocol messages over one byte stream.

    Sends are serialised by a lock so that several tasks may share the stream.
    """

    def __init__(self, stream: trio.abc.Stream, peer: str) -> None:
        self.stream = stream
        self.peer = peer
        self._decoder = FrameDecoder()
        self._ready: deque[Message] = deque()
        self._send_lock = trio.Lock()

    async def send(self, message: Message) -> None:
        frame = encode_frame(message)
        async with self._send_lock:
            await self.stream.send_all(frame)

    async def receive(self) -> Message | None:
        """The next message, or None when the peer closed the stream cleanly.

        Raises :class:`ProtocolError` on a malformed frame or a stream closed mid-frame, and
        :class:`~pipeline.errors.MessageError` on a frame that is not a message.
        """
        while not self._ready:
            data = bytes(await self.stream.receive_some(_RECEIVE_BYTES))
            if not data:
                if self._decoder.pending_bytes:
                    raise ProtocolError("connection closed in the middle of a frame")
                return None
            self._ready.extend(self._decoder.feed(data))
        return self._ready.popleft()

    async def aclose(self) -> None:
        await self.stream.aclose()

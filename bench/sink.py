"""A minimal backend for agent benchmarks: speaks the wire protocol, hands out checks, and
acknowledges every event at once, so that only the agent's cost is measured."""

from __future__ import annotations

from typing import Any

import msgpack
import trio

from pipeline.wire import protocol
from pipeline.wire.stream import MessageStream


def event_id(raw: Any) -> str:
    event = msgpack.unpackb(raw) if isinstance(raw, bytes) else raw
    return str(event["id"])


class AckingSink:
    def __init__(self, checks: list[dict[str, Any]] | None = None) -> None:
        self.checks = checks or []
        self.received = 0

    async def serve(self, stream: trio.SocketStream) -> None:
        conn = MessageStream(stream, "agent")
        await conn.receive()
        await conn.send(protocol.welcome("sink"))
        await conn.send(protocol.checks(self.checks))
        while (message := await conn.receive()) is not None:
            if message["type"] == protocol.PING:
                await conn.send(protocol.pong())
            elif message["type"] == protocol.EVENTS:
                ids = [event_id(e) for e in message["events"]]
                self.received += len(ids)
                await conn.send(protocol.ack(ids))

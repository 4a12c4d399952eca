"""Stand-ins for benchmarks: a minimal backend for agent benchmarks (speaks the wire protocol,
hands out checks, acknowledges every event at once, so that only the agent's cost is
measured), and a plugin handler that only counts (in a module of its own, so that the
benchmark run as ``__main__`` and the loaded plugin share one class)."""

from __future__ import annotations

from typing import Any

import msgpack
import trio

from pipeline.model import Event
from pipeline.wire.messages import Ack, Checks, Events, Ping, Pong, Welcome
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
        await conn.send(Welcome("sink"))
        await conn.send(Checks(tuple(self.checks)))
        while (message := await conn.receive()) is not None:
            match message:
                case Ping():
                    await conn.send(Pong())
                case Events():
                    ids = [event_id(e) for e in message.events]
                    self.received += len(ids)
                    await conn.send(Ack(tuple(ids)))


class Counting:
    """A plugin handler that only counts (the runner's own cost)."""

    target = 0
    seen = 0
    done: trio.Event

    def __init__(self, options: dict[str, Any]) -> None:
        pass

    async def handle(self, event: Event) -> None:
        Counting.seen += 1
        if Counting.seen == Counting.target:
            Counting.done.set()

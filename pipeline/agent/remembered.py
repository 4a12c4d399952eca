"""The last ``checks`` message from the backend, kept in the agent's data directory, so that a
restart without a backend still runs them. Never their secrets: those stay in memory."""

from __future__ import annotations

import os
from pathlib import Path

import trio

from pipeline.errors import ProtocolError
from pipeline.logs import get_logger
from pipeline.wire import messages as wire
from pipeline.wire.protocol import FrameDecoder, encode_frame

log = get_logger("agent")

#: The file, under the data directory.
CHECKS_FILE = "checks.msgpack"


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_bytes(data)
    os.replace(partial, path)


async def remember_checks(path: Path, message: wire.Checks) -> None:
    data = encode_frame(wire.Checks(message.checks, message.hooks, message.assets))
    await trio.to_thread.run_sync(_write_atomically, path, data)


async def remembered_checks(path: Path) -> wire.Checks | None:
    """The message last remembered at ``path``; None when there is none or it cannot be read
    (logged: the agent then waits for the backend)."""
    try:
        (message,) = FrameDecoder().feed(await trio.to_thread.run_sync(path.read_bytes))
        if not isinstance(message, wire.Checks):
            raise ProtocolError(f"expected checks, got {wire.message_type(message)}")
    except FileNotFoundError:
        return None
    except (OSError, ValueError, ProtocolError) as exc:
        log.error("remembered checks unreadable; waiting for the backend", path=str(path), error=exc)
        return None
    return message

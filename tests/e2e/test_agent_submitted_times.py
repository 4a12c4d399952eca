"""A result a local program submits keeps the times it carries, as in Sensu Go's agent: the
local API and the socket fill ``executed`` and the event ``timestamp`` with "now" only when the
submitter left them at 0, and keep ``issued`` as given (agent/event.go ``prepareEvent``)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from tests.support import EventPipe, capture_handler, loopback_backend, start_backend_and_agent, write_config

pytestmark = pytest.mark.e2e

#: Times a script that ran a while ago reports (2027-01-15): far from "now" in any test run.
EXECUTED, ISSUED, TIMESTAMP = 1_800_000_000, 1_799_999_990, 1_800_000_005


async def send_tcp(address: tuple[str, int], data: bytes) -> bytes:
    stream = await trio.open_tcp_stream(*address)
    async with stream:
        await stream.send_all(data)
        await stream.send_eof()
        reply = b""
        while chunk := await stream.receive_some(4096):
            reply += chunk
    return reply


async def submit_all(tmp_path: Path) -> tuple[dict[str, dict[str, Any]], float, float]:
    """Submit four results (API and socket, with and without times) to a real agent and return
    the events the backend's handler received, by check name, and the wall clock around it."""
    pipe = EventPipe(tmp_path / "events.fifo")
    backend = loopback_backend(tmp_path, write_config(tmp_path / "config", capture_handler(pipe.path)))
    before = time.time()
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            started = await start_backend_and_agent(nursery, tmp_path, backend, api=True, socket=True)
            url = started.events_url
            timed = {"timestamp": TIMESTAMP, "check": {"metadata": {"name": "api-timed"}, "executed": EXECUTED,
                                                       "issued": ISSUED, "handlers": ["capture"]}}  # fmt: skip
            untimed = {"check": {"metadata": {"name": "api-untimed"}, "handlers": ["capture"]}}
            async with httpx.AsyncClient() as client:
                for body in (timed, untimed):
                    assert (await client.post(url, json=body)).status_code == 202
            for result in (
                {
                    "name": "socket-timed",
                    "output": "x",
                    "executed": EXECUTED,
                    "issued": ISSUED,
                    "handlers": ["capture"],
                },
                {"name": "socket-untimed", "output": "x", "handlers": ["capture"]},
            ):
                assert await send_tcp(started.socket, json.dumps(result).encode()) == b"ok"
            received: dict[str, dict[str, Any]] = {}
            while len(received) < 4:
                event = await pipe.next_event()
                received[event["check"]["metadata"]["name"]] = event
            nursery.cancel_scope.cancel()
    await pipe.aclose()
    return received, before, time.time()


async def test_submitted_times_are_kept_and_only_missing_ones_are_now(tmp_path: Path) -> None:
    received, before, after = await submit_all(tmp_path)

    def now_ish(value: int) -> bool:
        return int(before) <= value <= int(after) + 1

    api_timed, api_untimed = received["api-timed"], received["api-untimed"]
    assert (api_timed["timestamp"], api_timed["check"]["executed"], api_timed["check"]["issued"]) == (
        TIMESTAMP, EXECUTED, ISSUED)  # fmt: skip
    assert now_ish(api_untimed["timestamp"])
    assert now_ish(api_untimed["check"]["executed"])
    assert api_untimed["check"]["issued"] == 0  # Sensu Go's agent never fills issued

    socket_timed, socket_untimed = received["socket-timed"], received["socket-untimed"]
    assert (socket_timed["check"]["executed"], socket_timed["check"]["issued"]) == (EXECUTED, ISSUED)
    assert now_ish(socket_timed["timestamp"])  # a 1.x result has no timestamp: the event's is now
    assert now_ish(socket_untimed["check"]["executed"])
    assert socket_untimed["check"]["issued"] == 0

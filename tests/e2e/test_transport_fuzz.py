"""Fuzzed frames on the agent transport, before and after a valid handshake: whatever a peer
sends costs it its connection at most; the backend answers the next agent and stores and acks
its event, and its log stays one line per entry (no control character from a peer raw)."""

from __future__ import annotations

import logging
import struct
from pathlib import Path
from typing import Any

import msgpack
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.agent.settings import AgentConfig, agent_entity
from pipeline.logs import LogfmtFormatter
from pipeline.model import new_event_id
from pipeline.model.codec import encode
from pipeline.wire.messages import Events, Hello, encode_message
from pipeline.wire.stream import MessageStream
from tests.support import loopback_backend, wire_map, write_config

pytestmark = pytest.mark.e2e

ODD = st.sampled_from([None, True, -1, 2**63, 2**64 - 1, -(2**63), 1.5, float("nan"), float("inf"), "", "\x00\r\x1b[2J",
                       "²", b"\xff", [], {}, [[[]]], {"metadata": 5}, "x" * 300])  # fmt: skip
VALUES = ODD | st.recursive(ODD, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                            max_leaves=6)  # fmt: skip


def hello(name: str = "fuzz") -> Hello:
    return Hello(name, "default", (), encode(agent_entity(AgentConfig(name=name, backend_addrs=[]))))


def good_event(name: str, check: str = "c") -> dict[str, Any]:
    return {"entity": {"metadata": {"name": name}, "entity_class": "agent"}, "id": new_event_id(), "timestamp": 1,
            "check": {"metadata": {"name": check}, "output": "o", "status": 0}}  # fmt: skip


@st.composite
def spliced_event(draw: st.DrawFn) -> Any:
    event = good_event("fuzz")
    section = draw(st.sampled_from(["check", "entity", "top"]))
    target = event if section == "top" else event[section]
    target[draw(st.sampled_from(["metadata", "status", "output", "id", "timestamp", "name", "metrics", "x"]))] = draw(
        VALUES
    )
    return msgpack.packb(event) if draw(st.booleans()) else event


MESSAGES = st.one_of(
    st.builds(lambda events: {"type": "events", "events": events}, st.lists(spliced_event() | VALUES, max_size=4)),
    st.builds(lambda event: {"type": "keepalive", "event": event}, VALUES | st.builds(msgpack.packb, spliced_event())),
    st.builds(lambda kind, extra: {"type": kind, **extra},
              st.sampled_from(["ping", "pong", "welcome", "checks", "ack", "execute", "error", "deregister", "hello", "x"]),
              st.dictionaries(st.sampled_from(["ids", "checks", "id", "message", "version", "entity", "events"]), VALUES,
                              max_size=3)),
    VALUES,
)  # fmt: skip


def frame(message: Any) -> bytes:
    body = msgpack.packb(message, use_bin_type=True)
    return struct.pack(">I", len(body)) + body


async def send_and_drain(address: tuple[str, int], frames: list[bytes]) -> None:
    stream = await trio.open_tcp_stream(*address)
    with trio.move_on_after(0.3):  # a connection the backend keeps open is closed by us
        try:
            for data in frames:
                await stream.send_all(data)
            while await stream.receive_some(65536):
                pass
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
    await stream.aclose()


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    sessions=st.lists(st.tuples(st.booleans(), st.lists(MESSAGES, min_size=1, max_size=5)), min_size=12, max_size=12)
)
async def test_fuzzed_frames_cost_only_their_connection(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, sessions: list[tuple[bool, list[Any]]]
) -> None:
    caplog.set_level(logging.DEBUG, logger="pipeline")
    backend = loopback_backend(tmp_path / new_event_id(), write_config(tmp_path / "config", ""))
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            transport = (await nursery.start(backend.run)).transport
            for handshake, messages in sessions:
                await send_and_drain(
                    transport, [frame(encode_message(hello()))] * handshake + [frame(m) for m in messages]
                )
            conn = MessageStream(await trio.open_tcp_stream(*transport), "backend")
            await conn.send(hello("sane"))
            event = good_event("sane")
            await conn.send(Events((msgpack.packb(event),)))
            while (reply := wire_map(await conn.receive())) and reply["type"] != "ack":
                pass
            await conn.aclose()
            nursery.cancel_scope.cancel()
    assert reply
    assert reply["ids"] == [event["id"]]
    for record in caplog.records:
        line = LogfmtFormatter().format(record)
        assert not [c for c in line if not c.isprintable()], ascii(line)

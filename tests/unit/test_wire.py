"""The agent transport's framing: messages survive any split of the byte stream; bad frames are errors."""

from __future__ import annotations

import struct

import msgpack
import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from pipeline.wire.messages import (
    MESSAGE_FIELDS,
    Ack,
    Checks,
    Deregister,
    Error,
    Events,
    Execute,
    Hello,
    Keepalive,
    Ping,
    Pong,
    Welcome,
    decode_message,
    encode_message,
    message_type,
)
from pipeline.wire.protocol import FrameDecoder, ProtocolError, encode_frame
from pipeline.wire.stream import MessageStream


def test_every_message_type_has_a_builder_that_validates() -> None:
    messages = [
        Hello("web1", "default", ("linux",), {"metadata": {"name": "web1"}}),
        Welcome("backend1"),
        Checks(()),
        Execute({"metadata": {"name": "disk"}}, ()),
        Events(()),
        Ack(("a",)),
        Error("no"),
        Keepalive(b"event"),
        Deregister("id1"),
        Ping(),
        Pong(),
    ]
    assert {message_type(m) for m in messages} == set(MESSAGE_FIELDS)
    decoder = FrameDecoder()
    assert decoder.feed(b"".join(encode_frame(m) for m in messages)) == messages


@given(cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=10))
def test_messages_survive_any_split_of_the_stream(cuts: list[int]) -> None:
    messages = [Events(({"id": str(i), "check": {"output": "x" * i}},)) for i in range(5)]
    data = b"".join(encode_frame(m) for m in messages)
    decoder = FrameDecoder()
    received = []
    last = 0
    for cut in sorted(min(c, len(data)) for c in cuts):
        received += decoder.feed(data[last:cut])
        last = cut
    received += decoder.feed(data[last:])
    assert received == messages


def test_oversized_frame_is_refused_before_it_is_buffered() -> None:
    decoder = FrameDecoder(max_frame_bytes=1024)
    with pytest.raises(ProtocolError, match="frame of 1025 bytes exceeds the limit of 1024"):
        decoder.feed(struct.pack(">I", 1025))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"\xc1", "malformed msgpack"),
        (msgpack.packb([1, 2]), "expected a message map, got list"),
        (msgpack.packb({"type": "launch"}), "unknown message type 'launch'"),
        (msgpack.packb({"type": "ack", "ids": []}), "ack message lacks rejected"),
    ],
)
def test_bad_frames_name_the_problem(body: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        FrameDecoder().feed(struct.pack(">I", len(body)) + body)


async def test_message_stream_over_a_real_stream_pair() -> None:
    left, right = trio.testing.memory_stream_pair()
    sender, receiver = MessageStream(left, "left"), MessageStream(right, "right")
    await sender.send(Welcome("b"))
    await sender.send(Checks(({"command": "true"},), ({"command": "uptime"},)))
    assert await receiver.receive() == Welcome("b")
    assert (await receiver.receive()) == Checks(({"command": "true"},), ({"command": "uptime"},))
    await sender.aclose()
    assert await receiver.receive() is None


async def test_stream_closed_mid_frame_is_a_protocol_error() -> None:
    left, right = trio.testing.memory_stream_pair()
    await left.send_all(encode_frame(Welcome("b"))[:-2])
    await left.aclose()
    with pytest.raises(ProtocolError, match="closed in the middle of a frame"):
        await MessageStream(right, "right").receive()


def test_an_execute_request_may_carry_the_proxy_entity_and_is_checked_at_the_edge() -> None:
    plain = encode_message(Execute({"metadata": {"name": "ping"}}, ()))
    assert "entity" not in plain
    proxied = Execute(
        {"metadata": {"name": "ping"}}, ({"metadata": {"name": "h"}},), entity={"metadata": {"name": "sw1"}}
    )
    (decoded,) = FrameDecoder().feed(encode_frame(proxied))
    assert isinstance(decoded, Execute)
    assert decoded.entity == {"metadata": {"name": "sw1"}}
    bad = [
        ({**plain, "check": "ping"}, "execute.check: expected a map, got str"),
        ({**plain, "hooks": {"h": 1}}, "execute.hooks: expected a list of maps"),
        ({**plain, "hooks": ["h"]}, "execute.hooks: expected a list of maps"),
        ({**plain, "entity": ["sw1"]}, "execute.entity: expected a map, got list"),
        ({**plain, "assets": {"a": 1}}, "execute.assets: expected a list of maps"),
    ]
    for message, error in bad:
        with pytest.raises(ProtocolError, match=error):
            decode_message(message)

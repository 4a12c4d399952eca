"""The wire refuses what would crash a daemon: frames nested too deep, hello fields that are not
finite numbers in range or not of their type. Each is a ProtocolError for that peer."""

from __future__ import annotations

import math
import struct
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.wire import protocol
from pipeline.wire.messages import MESSAGE_FIELDS, Hello, decode_message, encode_message, message_type
from pipeline.wire.protocol import MAX_FRAME_DEPTH, FrameDecoder, ProtocolError


def framed(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


def nested(depth: int) -> bytes:
    """A ``ping`` whose ``x`` holds lists ``depth`` deep (the frame's own map is one more level)."""
    return framed(b"\x82\xa4type\xa4ping\xa1x" + b"\x91" * depth + b"\xc0")


def test_a_frame_nested_deeper_than_the_limit_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match=f"^frame nested deeper than {MAX_FRAME_DEPTH} levels$"):
        FrameDecoder().feed(nested(MAX_FRAME_DEPTH))
    with pytest.raises(ProtocolError, match=r"^malformed msgpack frame"):  # msgpack's own stack limit
        FrameDecoder().feed(nested(100_000))


def test_a_frame_nested_to_the_limit_is_read() -> None:
    (message,) = FrameDecoder().feed(nested(MAX_FRAME_DEPTH - 1))
    assert message_type(message) == "ping"


def hello(**fields: Any) -> dict[str, Any]:
    return {**encode_message(Hello("a", "default", (), {})), **fields}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (math.nan, "hello.heartbeat_timeout: nan is out of range (0..86400 seconds)"),
        (math.inf, "hello.heartbeat_timeout: inf is out of range (0..86400 seconds)"),
        (-math.inf, "hello.heartbeat_timeout: -inf is out of range (0..86400 seconds)"),
        (0, "hello.heartbeat_timeout: 0.0 is out of range (0..86400 seconds)"),
        (-1.5, "hello.heartbeat_timeout: -1.5 is out of range (0..86400 seconds)"),
        (2**64 - 1, "hello.heartbeat_timeout: 1.8446744073709552e+19 is out of range (0..86400 seconds)"),
        (True, "hello.heartbeat_timeout: expected a number of seconds, got bool"),
        ("15", "hello.heartbeat_timeout: expected a number of seconds, got str"),
    ],
)
def test_a_heartbeat_timeout_that_is_not_a_finite_number_in_range_is_refused(value: Any, message: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_message(hello(heartbeat_timeout=value))
    assert str(caught.value) == message


def test_heartbeat_timeouts_in_range_and_the_default() -> None:
    def timeout(message: dict[str, Any]) -> float:
        decoded = decode_message(message)
        assert isinstance(decoded, Hello)
        return decoded.heartbeat_timeout_or(15.0)

    assert timeout(hello(heartbeat_timeout=86400)) == 86400.0
    assert timeout(hello(heartbeat_timeout=0.5)) == 0.5
    assert timeout(hello()) == 15.0


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"version": True}, "hello.version: expected an integer, got bool"),
        ({"version": 1.0}, "hello.version: expected an integer, got float"),
        ({"agent": ["a"]}, "hello.agent: expected a string, got list"),
        ({"namespace": 1}, "hello.namespace: expected a string, got int"),
        ({"subscriptions": [1]}, "hello.subscriptions: expected a list of strings"),
    ],
)
def test_hello_fields_must_have_their_types(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_message(hello(**fields))
    assert str(caught.value) == message


@given(st.binary(max_size=300))
def test_any_bytes_give_messages_or_a_protocol_error(data: bytes) -> None:
    try:
        for message in FrameDecoder().feed(framed(data)):
            assert message_type(message) in MESSAGE_FIELDS
    except ProtocolError:
        pass


@given(st.recursive(st.none() | st.integers(-(2**63), 2**64 - 1) | st.floats() | st.text(max_size=3),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
                    max_leaves=30))  # fmt: skip
def test_any_msgpack_value_as_a_hello_gives_a_timeout_or_a_protocol_error(value: Any) -> None:
    message = hello(heartbeat_timeout=value)
    try:
        (decoded,) = FrameDecoder().feed(framed(msgpack.packb(message)))
        assert isinstance(decoded, Hello)
        assert 0 < decoded.heartbeat_timeout_or(15.0) <= protocol.MAX_HEARTBEAT_TIMEOUT
    except ProtocolError:
        pass

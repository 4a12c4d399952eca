"""Typed wire messages: the bytes version 1 peers send decode to messages that encode to the same
bytes again (an old agent talks to a new backend and back), every message survives a round trip,
and any map a peer may send decodes or is a ProtocolError naming the field, never another error."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.errors import MessageError, PipelineError, ProtocolError
from pipeline.wire.messages import (
    MAX_HEARTBEAT_TIMEOUT,
    MESSAGE_FIELDS,
    PROTOCOL_VERSION,
    Ack,
    Checks,
    Deregister,
    Error,
    Events,
    Execute,
    Hello,
    Keepalive,
    Message,
    Ping,
    Pong,
    Rejected,
    Welcome,
    decode_message,
    encode_message,
)
from pipeline.wire.protocol import FrameDecoder, encode_frame, pack_frame

# The dict builders of protocol version 1 as they were before the messages were typed, kept
# verbatim: what an agent or backend of an earlier release puts on the wire.


def v1_hello(
    agent: str,
    namespace: str,
    subscriptions: list[str],
    entity: dict[str, Any],
    *,
    heartbeat_timeout: float | None = None,
    credentials: dict[str, str] | None = None,
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "type": "hello",
        "version": 1,
        "agent": agent,
        "namespace": namespace,
        "subscriptions": subscriptions,
        "entity": entity,
    }
    if heartbeat_timeout is not None:
        message["heartbeat_timeout"] = heartbeat_timeout
    message.update(credentials or {})
    return message


def v1_checks(
    configs: list[dict[str, Any]],
    hooks: list[dict[str, Any]] | None = None,
    assets: list[dict[str, Any]] | None = None,
    secrets: dict[str, Any] | None = None,
) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "checks", "checks": configs, "hooks": hooks or [], "assets": assets or []}
    if secrets:
        message["secrets"] = secrets
    return message


def v1_execute(
    check: dict[str, Any],
    hooks: list[dict[str, Any]],
    assets: list[dict[str, Any]] | None = None,
    entity: dict[str, Any] | None = None,
    secrets: dict[str, Any] | None = None,
) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "execute", "check": check, "hooks": hooks, "assets": assets or []}
    if entity is not None:
        message["entity"] = entity
    if secrets:
        message["secrets"] = secrets
    return message


def v1_events(batch: Sequence[bytes | dict[str, Any]]) -> dict[str, Any]:
    return {"type": "events", "events": list(batch)}


def v1_ack(ids: list[str], rejected: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {"type": "ack", "ids": ids, "rejected": rejected or []}


def v1_frame(message: dict[str, Any]) -> bytes:
    body: bytes = msgpack.packb(message, use_bin_type=True)
    return len(body).to_bytes(4, "big") + body


ENTITY = {"entity_class": "agent", "metadata": {"name": "web1", "namespace": "default"}, "subscriptions": ["linux"]}
CHECK = {"metadata": {"name": "disk", "namespace": "default"}, "command": "df -h", "interval": 60, "timeout": 0}
EVENT = {"id": "e1", "timestamp": 1, "entity": ENTITY, "check": {**CHECK, "status": 2, "output": "full\n"}}

V1_MESSAGES = [
    v1_hello("web1", "default", ["linux", "entity:web1"], ENTITY),
    v1_hello("web1", "default", [], ENTITY, heartbeat_timeout=15.0, credentials={"user": "agent", "password": "pw"}),
    v1_hello("web1", "ops", ["linux"], ENTITY, heartbeat_timeout=120, credentials={"token": "tok-1"}),
    {"type": "welcome", "version": 1, "backend": "backend1"},
    v1_checks([CHECK], [{"metadata": {"name": "h"}, "command": "ps"}], [{"metadata": {"name": "a"}, "url": "u"}]),
    v1_checks([CHECK], secrets={"disk": {"env": {"TOKEN": "s3cret"}}, "load": {"error": "no TLS"}}),
    v1_checks([]),
    v1_execute(CHECK, []),
    v1_execute(
        CHECK,
        [{"metadata": {"name": "h"}}],
        [{"metadata": {"name": "a"}}],
        {"metadata": {"name": "sw1"}},
        {"env": {"T": "v"}},
    ),
    v1_events([msgpack.packb(EVENT), EVENT, b""]),
    v1_events([]),
    v1_ack(["e1", "e2"]),
    v1_ack(
        [],
        [
            {"id": "e3", "error": "entity: event must contain an entity"},
            {
                "id": "e4",
                "error": "check.proxy_entity_name: 'web2' is the entity of another agent",
                "reason": "other_agent",
            },
        ],
    ),
    {"type": "error", "message": "authentication failed for user 'agent'"},
    {"type": "keepalive", "event": msgpack.packb(EVENT)},
    {"type": "deregister", "id": "req-1"},
    {"type": "ping"},
    {"type": "pong"},
]


def test_every_type_is_among_the_version_1_frames() -> None:
    assert {message["type"] for message in V1_MESSAGES} == set(MESSAGE_FIELDS)


@pytest.mark.parametrize("message", V1_MESSAGES, ids=lambda m: str(m["type"]))
def test_version_1_frames_decode_and_encode_to_the_same_bytes(message: dict[str, Any]) -> None:
    frame = v1_frame(message)
    (decoded,) = FrameDecoder().feed(frame)
    assert encode_frame(decoded) == frame
    assert encode_message(decoded) == message


def test_the_protocol_version_and_a_frame_are_pinned() -> None:
    assert PROTOCOL_VERSION == 1
    assert encode_frame(Ping()).hex() == "0000000b81a474797065a470696e67"
    assert encode_message(Hello("a", "b", (), {})) == {"type": "hello", "version": 1, "agent": "a", "namespace": "b",
                                                       "subscriptions": [], "entity": {}}  # fmt: skip


def test_typed_fields_as_decoded() -> None:
    (hello, ack) = FrameDecoder().feed(v1_frame(V1_MESSAGES[2]) + v1_frame(V1_MESSAGES[12]))
    assert hello == Hello("web1", "ops", ("linux",), ENTITY, heartbeat_timeout=120, token="tok-1")
    assert isinstance(hello, Hello)
    assert hello.credentials == {"token": "tok-1"}
    assert hello.heartbeat_timeout_or(15.0) == 120.0
    assert ack == Ack((), (Rejected("e3", "entity: event must contain an entity"),
                           Rejected("e4", "check.proxy_entity_name: 'web2' is the entity of another agent",
                                    "other_agent")))  # fmt: skip


def test_wire_errors_are_pipeline_errors_naming_the_field() -> None:
    assert issubclass(ProtocolError, PipelineError)
    assert issubclass(MessageError, ProtocolError)
    cases = [
        ({"type": "welcome", "version": "1", "backend": "b"}, "welcome.version", "expected an integer, got str"),
        ({"type": "ack", "ids": ["a", 1], "rejected": []}, "ack.ids", "expected a list of strings"),
        ({"type": "ack", "ids": [], "rejected": [{"id": "a"}]}, "ack.rejected[0].error", "missing"),
        ({"type": "ack", "ids": [], "rejected": [{"id": "a", "error": "e", "reason": 3}]}, "ack.rejected[0].reason",
         "expected a string, got int"),
        ({"type": "events", "events": [1]}, "events.events", "expected a list of events (msgpack bytes or maps)"),
        ({"type": "keepalive", "event": "x"}, "keepalive.event", "expected an event (msgpack bytes or a map), got str"),
        ({"type": "deregister", "id": None}, "deregister.id", "expected a string, got NoneType"),
        ({"type": "checks", "checks": [], "hooks": [], "assets": "a"}, "checks.assets", "expected a list of maps"),
        ({"type": "checks", "checks": [], "hooks": [], "secrets": []}, "checks.secrets", "expected a map of check names"),
        ({**V1_MESSAGES[0], "token": 5}, "hello.token", "expected a string, got int"),
        ({**V1_MESSAGES[0], "entity": []}, "hello.entity", "expected a map, got list"),
        ({"type": "error"}, "error.message", None),
    ]  # fmt: skip
    for raw, field, reason in cases:
        with pytest.raises(MessageError) as caught:
            decode_message(raw)
        assert caught.value.field == field
        assert str(caught.value) == (f"{field}: {reason}" if reason else "error message lacks message")


TEXT = st.text(max_size=5)
SCALARS = (st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False) | TEXT
           | st.binary(max_size=5))  # fmt: skip
MAPS = st.dictionaries(TEXT, st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                                          | st.dictionaries(TEXT, inner, max_size=3), max_leaves=8), max_size=4)  # fmt: skip
MAP_TUPLES = st.lists(MAPS, max_size=3).map(tuple)
SECRET = st.builds(lambda env: {"env": env}, st.dictionaries(TEXT, TEXT, max_size=3)) | st.builds(
    lambda reason: {"error": reason}, TEXT
)
EVENT_DATA = st.binary(max_size=20) | MAPS
SECONDS = st.integers(1, int(MAX_HEARTBEAT_TIMEOUT)) | st.floats(0, MAX_HEARTBEAT_TIMEOUT, exclude_min=True)

MESSAGES: st.SearchStrategy[Message] = st.one_of(
    st.builds(Hello, TEXT, TEXT, st.lists(TEXT, max_size=3).map(tuple), MAPS, st.none() | SECONDS,
              st.none() | TEXT, st.none() | TEXT, st.none() | TEXT, st.integers(-(2**63), 2**64 - 1)),
    st.builds(Welcome, TEXT, st.integers(-(2**63), 2**64 - 1)),
    st.builds(Checks, MAP_TUPLES, MAP_TUPLES, MAP_TUPLES, st.dictionaries(TEXT, SECRET, max_size=3)),
    st.builds(Execute, MAPS, MAP_TUPLES, MAP_TUPLES, st.none() | MAPS, st.none() | SECRET),
    st.builds(Events, st.lists(EVENT_DATA, max_size=4).map(tuple)),
    st.builds(Ack, st.lists(TEXT, max_size=4).map(tuple), st.lists(st.builds(Rejected, TEXT, TEXT, TEXT),
                                                                   max_size=3).map(tuple)),
    st.builds(Error, TEXT),
    st.builds(Keepalive, EVENT_DATA),
    st.builds(Deregister, TEXT),
    st.just(Ping()),
    st.just(Pong()),
)  # fmt: skip


@given(MESSAGES)
def test_every_message_survives_a_round_trip(message: Message) -> None:
    frame = encode_frame(message)
    assert FrameDecoder().feed(frame) == [message]
    assert decode_message(encode_message(message)) == message


FIELD_NAMES = sorted({name for fields in MESSAGE_FIELDS.values() for name in fields}
                     | {"heartbeat_timeout", "user", "password", "token", "assets", "secrets", "reason", "error"})  # fmt: skip
VALUES = st.recursive(SCALARS | st.sampled_from([float("nan"), float("inf")]),
                      lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(FIELD_NAMES) | TEXT,
                                                                                   inner, max_size=3),
                      max_leaves=10)  # fmt: skip
ANY_MAPS = st.builds(lambda kind, fields: {"type": kind, **fields},
                     st.sampled_from(sorted(MESSAGE_FIELDS)) | VALUES,
                     st.dictionaries(st.sampled_from(FIELD_NAMES), VALUES, max_size=6))  # fmt: skip


@given(ANY_MAPS | VALUES)
def test_any_map_decodes_or_is_a_protocol_error(raw: Any) -> None:
    try:
        message = decode_message(raw)
    except ProtocolError:
        return
    assert decode_message(encode_message(message)) == message


@given(ANY_MAPS)
def test_any_map_off_the_wire_decodes_or_is_a_protocol_error(raw: dict[str, Any]) -> None:
    try:
        frame = pack_frame(raw)
    except (TypeError, ValueError):
        return  # not packable: no peer can send it
    with contextlib.suppress(ProtocolError):
        FrameDecoder().feed(frame)

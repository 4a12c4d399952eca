"""The server's HTTP framing (pipeline/http_wire.py) on its own: what h11 did for the server,
kept with httptools underneath."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.http_wire import (
    DONE,
    MUST_CLOSE,
    NEED_DATA,
    ConnectionClosed,
    Data,
    EndOfMessage,
    ProtocolError,
    Request,
    Response,
    ServerConnection,
)


def events(connection: ServerConnection) -> list[Any]:
    seen: list[Any] = []
    while (event := connection.next_event()) is not NEED_DATA:
        seen.append(event)
        if isinstance(event, (EndOfMessage, ConnectionClosed)):
            break
    return seen


def answer(connection: ServerConnection, *parts: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> bytes:
    out = connection.send(Response(200, headers or [], b"OK"))
    out += b"".join(connection.send(Data(part)) for part in parts)
    return out + connection.send(EndOfMessage())


def test_pipelined_requests_come_one_at_a_time_and_a_bad_one_after_those_before_it() -> None:
    wire = ServerConnection(16384)
    wire.receive_data(
        b"GET /1 HTTP/1.1\r\nHost: t\r\n\r\nGET /2 HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nContent-Length: x\r\n\r\n"
    )
    first = events(wire)
    assert [type(e) for e in first] == [Request, EndOfMessage]
    assert wire.next_event() is NEED_DATA  # the next request waits for this one's answer
    answer(wire, b"a", headers=[(b"content-length", b"1")])
    wire.start_next_cycle()
    assert events(wire)[0].target == b"/2"
    answer(wire, headers=[(b"content-length", b"0")])
    wire.start_next_cycle()
    with pytest.raises(ProtocolError) as refused:
        wire.next_event()
    assert refused.value.error_status_hint == 400


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", 400),  # no Host
        (b"GET / HTTP/1.1\r\nHost: t\r\nX: " + b"a" * 20000, 431),  # a head still unfinished past the limit
        (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    ],
)
def test_malformed_requests_are_refused_with_their_status(data: bytes, status: int) -> None:
    wire = ServerConnection(16384)
    wire.receive_data(data)
    with pytest.raises(ProtocolError) as refused:
        events(wire)
    assert refused.value.error_status_hint == status


def test_a_connection_closed_mid_request_is_an_error_and_between_requests_is_not() -> None:
    wire = ServerConnection(16384)
    wire.receive_data(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nab")
    assert [type(e) for e in events(wire)] == [Request, Data]
    wire.receive_data(b"")
    with pytest.raises(ProtocolError):
        wire.next_event()
    idle = ServerConnection(16384)
    idle.receive_data(b"")
    assert isinstance(idle.next_event(), ConnectionClosed)


def test_an_answer_without_length_is_chunked_to_http_1_1_and_closes_http_1_0() -> None:
    wire = ServerConnection(16384)
    wire.receive_data(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    events(wire)
    assert answer(wire, b"abc") == b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    assert wire.our_state is DONE
    old = ServerConnection(16384)
    old.receive_data(b"GET / HTTP/1.0\r\n\r\n")
    events(old)
    assert answer(old, b"abc") == b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nabc"
    assert old.our_state is MUST_CLOSE


def test_head_and_204_get_no_body_and_an_upgrade_is_answered_then_closed() -> None:
    head = ServerConnection(16384)
    head.receive_data(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n")
    events(head)
    assert answer(head, b"abc", headers=[(b"content-length", b"3")]) == b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\n"
    upgrade = ServerConnection(16384)
    upgrade.receive_data(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x00")
    assert [type(e) for e in events(upgrade)] == [Request, EndOfMessage]
    answer(upgrade, headers=[(b"content-length", b"0")])
    assert upgrade.our_state is MUST_CLOSE


def test_100_continue_is_awaited_until_answered_or_the_body_comes() -> None:
    wire = ServerConnection(16384)
    wire.receive_data(b"POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
    events(wire)
    assert wire.they_are_waiting_for_100_continue
    wire.receive_data(b"ok")
    assert isinstance(wire.next_event(), Data)
    assert not wire.they_are_waiting_for_100_continue

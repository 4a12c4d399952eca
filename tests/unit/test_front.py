"""The backend's front process (pipeline/backend/front.py), its class run here on real sockets,
the test standing for the backend at the other end of the link and the hand-over pair, on
trio's mock clock: a plain submission is journaled, given over the link and answered 201; a
credential the backend refuses, a head in pieces and a body that does not arrive in time hand
the connection over with the bytes read; an idle keep-alive connection is closed."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import trio
import trio.testing

from pipeline.backend import front_link as link
from pipeline.backend.front import Front, FrontSettings
from pipeline.backend.journal_files import read_segment

EVENTS = b"/api/core/v2/namespaces/default/events"
BODY = json.dumps({"entity": {"metadata": {"name": "web1"}},
                   "check": {"metadata": {"name": "disk"}, "status": 2, "output": "full"}}).encode()  # fmt: skip


def post(body: bytes = BODY, key: bytes = b"k") -> bytes:
    return (b"POST " + EVENTS + b" HTTP/1.1\r\nHost: x\r\nAuthorization: Key " + key
            + b"\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body))  # fmt: skip


@dataclass
class Backend:
    """The test's side of the link: answers questions with ``allow``, keeps the frames."""

    link: trio.SocketStream
    handover: trio.socket.SocketType
    allow: bool = True
    frames: list[tuple[int, bytes]] = field(default_factory=list)
    arrived: trio.Event = field(default_factory=trio.Event)

    async def listen(self) -> None:
        frames = link.Frames()
        while data := await self.link.receive_some(65536):
            for kind, body in frames.feed(data):
                self.frames.append((kind, body))
                self.arrived.set()
                if kind == link.ASK:
                    question, *_ = link.question_of(body)
                    await self.link.send_all(link.answer_frame(question, self.allow))

    async def frame(self, kind: int) -> bytes:
        while True:
            for taken, body in self.frames:
                if taken == kind:
                    return body
            self.arrived = trio.Event()
            await self.arrived.wait()

    async def taken_over(self) -> tuple[socket.socket, str, bytes]:
        data, ancillary, _, _ = await self.handover.recvmsg(link.DATAGRAM_BYTES, link.ANCILLARY_SPACE)
        fd, reason, received = link.taken_over(data, ancillary)
        assert fd is not None
        return socket.socket(fileno=fd), reason, received


@asynccontextmanager
async def front(tmp_path: Path) -> AsyncIterator[tuple[Backend, tuple[str, int]]]:
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    listener.listen()
    ours, theirs = trio.socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    hand_ours, hand_theirs = trio.socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    settings = FrontSettings(journal=str(tmp_path), first_segment=3, max_body=1024 * 1024, keep_alive_timeout=5.0,
                             head_timeout=10.0, max_connections=100, log_level="info", fds=(-1, -1, -1))  # fmt: skip
    backend = Backend(trio.SocketStream(ours), hand_ours)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(Front(settings, theirs, hand_theirs).run, trio.SocketListener(listener))
            nursery.start_soon(backend.listen)
            yield backend, listener.getsockname()
            nursery.cancel_scope.cancel()
    finally:
        for sock in (listener, ours, theirs, hand_ours, hand_theirs):  # the process's end would close them
            sock.close()


async def connect(address: tuple[str, int]) -> trio.SocketStream:
    return await trio.open_tcp_stream(*address)


async def answer_of(stream: trio.SocketStream) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += await stream.receive_some(65536)
    return data


async def test_a_plain_submission_is_journaled_given_and_answered_201(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with front(tmp_path) as (backend, address):
        client = await connect(address)
        await client.send_all(post())
        assert (await answer_of(client)).startswith(b"HTTP/1.1 201 Created\r\n")
        number, record = link.segment_of(await backend.frame(link.RECORD))
        assert number == 3  # the segment the backend said to begin with
        records, torn = read_segment(tmp_path / "journal-3.log")
        assert (records, torn) == ([record], False)  # on disk before it was given
        await client.aclose()


async def test_a_refused_credential_hands_the_connection_over_with_its_request(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with front(tmp_path) as (backend, address):
        backend.allow = False
        client = await connect(address)
        await client.send_all(post(key=b"wrong"))
        taken, reason, received = await backend.taken_over()
        assert (reason, received) == ("credentials", post(key=b"wrong"))  # untouched, for the backend's 401
        with taken:  # the connection works from the backend's side
            taken.sendall(b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n")
            assert (await answer_of(client)).startswith(b"HTTP/1.1 401 ")
        assert not (tmp_path / "journal-3.log").read_bytes()  # nothing journaled
        await client.aclose()


async def test_a_head_in_pieces_or_a_slow_body_goes_to_the_backend_and_an_idle_connection_is_closed(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with front(tmp_path) as (backend, address):
        pieces = await connect(address)
        await pieces.send_all(b"POST " + EVENTS + b" HTTP/1.1\r\nHost: x\r\n")  # and nothing more yet
        started = trio.current_time()
        taken, reason, received = await backend.taken_over()
        assert (reason, received) == ("head", b"POST " + EVENTS + b" HTTP/1.1\r\nHost: x\r\n")
        assert trio.current_time() == started  # at once: the backend's head timeout is the one that runs
        taken.close()
        slow = await connect(address)
        request = post()
        await slow.send_all(request[:-10])  # the whole head, the body but for its last bytes
        started = trio.current_time()
        taken, reason, received = await backend.taken_over()
        assert (reason, received) == ("slow", request[:-10])
        assert 10.0 <= trio.current_time() - started <= 12.5  # the head timeout, give or take the sweep
        taken.close()
        idle = await connect(address)
        await idle.send_all(post())
        assert (await answer_of(idle)).startswith(b"HTTP/1.1 201 ")
        answered = trio.current_time()
        assert await idle.receive_some(65536) == b""  # closed by the front, quietly
        assert 5.0 <= trio.current_time() - answered <= 6.5  # the keep-alive timeout
        for stream in (idle, slow, pieces):
            await stream.aclose()

"""The backend's link to its front process (pipeline/backend/front_link.py): frames come out
whole and in order however the stream cuts them, and a connection handed over arrives as a
working socket with the bytes read of it and why."""

from __future__ import annotations

import socket

import pytest

from pipeline.backend import front_link as link


def test_frames_come_out_whole_and_in_order_however_the_bytes_are_cut() -> None:
    sent = [link.record_frame(7, b"a record"), link.sealed_frame(7), link.done_frame(3),
            link.ask_frame(1, "Key k", "default", "127.0.0.1"), link.flushed_frame(9)]  # fmt: skip
    stream = b"".join(sent)
    for cut in range(1, len(stream)):
        frames = link.Frames()
        taken = frames.feed(stream[:cut]) + frames.feed(stream[cut:])
        assert [kind for kind, _ in taken] == [link.RECORD, link.SEALED, link.DONE, link.ASK, link.FLUSHED]
        assert link.segment_of(taken[0][1]) == (7, b"a record")
        assert link.count_of(taken[1][1]) == 7
        assert link.count_of(taken[2][1]) == 3
        assert link.question_of(taken[3][1]) == (1, "Key k", "default", "127.0.0.1")
        assert link.count_of(taken[4][1]) == 9
        assert frames.buffer == bytearray()


def test_a_frame_longer_than_any_the_link_carries_is_refused_before_it_is_gathered() -> None:
    frames = link.Frames()
    with pytest.raises(ValueError, match="more than"):
        frames.feed(link.struct.pack("<IB", link.MAX_FRAME + 1, link.RECORD))
    assert len(frames.buffer) == 5  # nothing waited for


def test_a_connection_handed_over_arrives_working_with_its_bytes_and_its_reason() -> None:
    front, backend = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    client, server = socket.socketpair()
    with front, backend, client, server:
        ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, link.array.array("i", [server.fileno()]))]
        front.sendmsg([link.handover_datagram("request", b"GET / HTTP/1.1\r\n")], ancillary)
        data, received, _, _ = backend.recvmsg(link.DATAGRAM_BYTES, link.ANCILLARY_SPACE, socket.MSG_CMSG_CLOEXEC)
        fd, reason, bytes_read = link.taken_over(data, received)
        assert fd is not None
        assert (reason, bytes_read) == ("request", b"GET / HTTP/1.1\r\n")
        with socket.socket(fileno=fd) as taken:
            server.close()  # the front's copy: the connection lives on in the backend's
            client.sendall(b"more")
            assert taken.recv(16) == b"more"
            taken.sendall(b"answer")
            assert client.recv(16) == b"answer"

"""Check results pushed to the agent's Sensu 1.x socket, over TCP and UDP, reach the backend."""

from __future__ import annotations

import errno
import json
import os
import socket
from pathlib import Path

import httpx
import pytest
import trio
import trio.testing

from pipeline.agent.agent import Agent
from pipeline.agent.client_socket import MAX_RESULT_BYTES, READ_TIMEOUT, ClientSocketServer
from pipeline.agent.metrics import AgentMetrics
from pipeline.agent.settings import AgentConfig
from pipeline.model import Entity, Event, ObjectMeta
from tests.support import (
    EventPipe,
    admin_headers,
    capture_handler,
    loopback_backend,
    start_backend_and_agent,
    write_config,
)

pytestmark = pytest.mark.e2e


async def tcp_exchange(address: tuple[str, int], data: bytes) -> bytes:
    stream = await trio.open_tcp_stream(*address)
    async with stream:
        await stream.send_all(data)
        await stream.send_eof()
        reply = b""
        while chunk := await stream.receive_some(4096):
            reply += chunk
    return reply


def result(name: str, **fields: object) -> bytes:
    return json.dumps({"name": name, "output": f"{name} output", "handlers": ["capture"], **fields}).encode()


async def test_results_over_tcp_and_udp_and_bad_input_does_not_stop_the_socket(tmp_path: Path) -> None:
    pipe = EventPipe(tmp_path / "events.fifo")
    backend = loopback_backend(tmp_path, write_config(tmp_path / "config", capture_handler(pipe.path)))
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            addresses = await nursery.start(backend.run)
            agent = Agent(AgentConfig(name="web1", backend_addrs=[addresses.transport], api_addr=None,
                                      socket_addr=("127.0.0.1", 0), data_dir=tmp_path / "agent"))  # fmt: skip
            address = (await nursery.start(agent.run)).socket
            replies = [
                await tcp_exchange(address, result("over-tcp", status=2, source="switch1")),
                await tcp_exchange(address, b'{"name": "broken", "output": '),
                await tcp_exchange(address, result("bad-status", status="two")),
                await tcp_exchange(address, b"ping\n"),
            ]
            over_tcp = await pipe.next_event()
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                udp.sendto(b"not json at all", address)
                udp.sendto(result("over-udp", status=1), address)
            over_udp = await pipe.next_event()
            nursery.cancel_scope.cancel()
    await pipe.aclose()
    assert replies[0] == b"ok"
    assert replies[1].startswith(b"invalid: malformed JSON at line 1 column 30")
    assert replies[2] == b"invalid: status: expected integer, got str 'two'"
    assert replies[3] == b"pong"
    assert (over_tcp["entity"]["metadata"]["name"], over_tcp["check"]["metadata"]["name"]) == ("switch1", "over-tcp")
    assert (over_tcp["check"]["status"], over_tcp["check"]["output"]) == (2, "over-tcp output")
    assert (over_udp["entity"]["metadata"]["name"], over_udp["check"]["status"]) == ("web1", 1)
    registry = agent.metrics.registry
    assert registry.get_sample_value("pipeline_agent_socket_results_total", {"transport": "tcp"}) == 1
    assert registry.get_sample_value("pipeline_agent_socket_results_total", {"transport": "udp"}) == 1
    assert (
        registry.get_sample_value("pipeline_agent_socket_errors_total", {"transport": "tcp", "reason": "invalid"}) == 2
    )
    assert (
        registry.get_sample_value("pipeline_agent_socket_errors_total", {"transport": "udp", "reason": "invalid"}) == 1
    )


async def test_a_slow_spool_write_never_submits_a_result_twice(mock_clock: trio.testing.MockClock) -> None:
    """The read deadline must not cancel (and so repeat) the submission of a complete result."""
    submitted: list[Event] = []
    called, release = trio.Event(), trio.Event()

    async def slow_submit(event: Event) -> None:
        submitted.append(event)
        called.set()
        await release.wait()  # the spool write takes longer than the read deadline

    agent = Entity(entity_class="agent", metadata=ObjectMeta(name="web1", namespace="default"))
    server = ClientSocketServer(("127.0.0.1", 0), agent, slow_submit, AgentMetrics.create())
    async with trio.open_nursery() as nursery:
        address = await nursery.start(server.run)
        stream = await trio.open_tcp_stream(*address)
        await stream.send_all(result("slow"))
        await called.wait()
        mock_clock.jump(READ_TIMEOUT * 2)
        await trio.testing.wait_all_tasks_blocked()  # let an expired deadline act, if it covers the submit
        release.set()
        reply = await stream.receive_some(100)
        await stream.aclose()
        nursery.cancel_scope.cancel()
    assert reply == b"ok"
    assert len(submitted) == 1


async def test_deep_or_non_finite_json_is_refused_and_the_socket_goes_on() -> None:
    submitted: list[Event] = []
    delivered = trio.Event()

    async def submit(event: Event) -> None:
        submitted.append(event)
        delivered.set()

    metrics = AgentMetrics.create()
    agent = Entity(entity_class="agent", metadata=ObjectMeta(name="web1", namespace="default"))
    server = ClientSocketServer(("127.0.0.1", 0), agent, submit, metrics)
    with trio.fail_after(READ_TIMEOUT - 1):  # answered at once: no waiting for bytes that cannot help
        async with trio.open_nursery() as nursery:
            address = await nursery.start(server.run)
            stream = await trio.open_tcp_stream(*address)
            async with stream:
                await stream.send_all(b'{"a":' * 10_000)  # and the connection stays open
                deep = await stream.receive_some(200)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                for bad in (b"[" * 10_000, b'{"name": "x", "output": "o", "status": NaN}', b'{"name": "\\ud800"}'):
                    udp.sendto(bad, address)
                udp.sendto(result("after"), address)
            await delivered.wait()
            nursery.cancel_scope.cancel()
    assert deep.startswith(b"invalid: malformed JSON at line 1 column 321: nested deeper than 64 levels")
    assert [e.check_name for e in submitted] == ["after"]
    errors = metrics.registry.get_sample_value
    assert errors("pipeline_agent_socket_errors_total", {"transport": "tcp", "reason": "invalid"}) == 1
    assert errors("pipeline_agent_socket_errors_total", {"transport": "udp", "reason": "invalid"}) == 3


def recording_server() -> tuple[ClientSocketServer, list[Event], AgentMetrics]:
    submitted: list[Event] = []

    async def submit(event: Event) -> None:
        submitted.append(event)
        await trio.lowlevel.checkpoint()  # as the spool's wait does

    metrics = AgentMetrics.create()
    agent = Entity(entity_class="agent", metadata=ObjectMeta(name="web1", namespace="default"))
    return ClientSocketServer(("127.0.0.1", 0), agent, submit, metrics), submitted, metrics


@pytest.mark.parametrize("first_piece_there", [True, False], ids=["first-piece-read-at-accept", "nothing-at-accept"])
async def test_a_slow_client_sending_in_pieces_holds_up_no_fast_client(first_piece_there: bool) -> None:
    """A result trickling in over a second is answered, and fast clients are answered meanwhile;
    whatever the socket read when it took the connection is kept."""
    server, submitted, metrics = recording_server()
    with trio.fail_after(READ_TIMEOUT - 1):
        async with trio.open_nursery() as nursery:
            address = await nursery.start(server.run)
            body = result("slow")
            plain = socket.create_connection(address)  # connected by the kernel: the accept loop has not run yet
            if first_piece_there:
                plain.sendall(body[:5])  # so the loop's first read takes these bytes
            async with trio.SocketStream(trio.socket.from_stdlib_socket(plain)) as slow:
                if not first_piece_there:
                    await trio.testing.wait_all_tasks_blocked()  # taken with nothing to read yet
                    await slow.send_all(body[:5])
                for i in range(3):
                    await slow.send_all(body[5 + i * 10 : 15 + i * 10])
                    assert [await tcp_exchange(address, result(f"fast-{i}-{k}")) for k in range(5)] == [b"ok"] * 5
                    await trio.sleep(0.3)  # the slow client's pace: tested is that the others do not wait for it
                await slow.send_all(body[35:])
                reply = await slow.receive_some(100)
            nursery.cancel_scope.cancel()
    assert reply == b"ok"
    names = [e.check_name for e in submitted]
    assert names[-1] == "slow"
    assert sorted(names[:-1]) == sorted(f"fast-{i}-{k}" for i in range(3) for k in range(5))
    assert metrics.registry.get_sample_value("pipeline_agent_socket_results_total", {"transport": "tcp"}) == 16


async def test_many_connections_at_once_are_each_answered() -> None:
    server, submitted, metrics = recording_server()
    replies: list[bytes] = []
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            address = await nursery.start(server.run)

            async def one(i: int) -> None:
                replies.append(await tcp_exchange(address, result(f"many-{i}") if i % 10 else b"ping"))

            async with trio.open_nursery() as clients:
                for i in range(300):  # more than the answerers and the accept batch
                    clients.start_soon(one, i)
            nursery.cancel_scope.cancel()
    assert sorted(replies) == sorted([b"ok"] * 270 + [b"pong"] * 30)
    assert len({e.check_name for e in submitted}) == 270
    assert metrics.registry.get_sample_value("pipeline_agent_socket_results_total", {"transport": "tcp"}) == 270


async def test_a_client_that_closes_without_sending_is_refused_and_the_socket_goes_on() -> None:
    server, submitted, metrics = recording_server()
    with trio.fail_after(READ_TIMEOUT - 1):
        async with trio.open_nursery() as nursery:
            address = await nursery.start(server.run)
            silent = await trio.open_tcp_stream(*address)
            await silent.send_eof()
            nothing = await silent.receive_some(200)
            await silent.aclose()
            with socket.create_connection(address) as gone:  # and one that closes before we look
                gone.close()
            after = await tcp_exchange(address, result("after"))
            nursery.cancel_scope.cancel()
    assert nothing.startswith(b"invalid: malformed JSON at line 1 column 1")
    assert after == b"ok"
    assert [e.check_name for e in submitted] == ["after"]
    invalid = {"transport": "tcp", "reason": "invalid"}
    assert (
        metrics.registry.get_sample_value("pipeline_agent_socket_errors_total", invalid) == 2
    )  # as before: nothing is not JSON


async def test_a_client_that_never_finishes_is_told_so_after_the_deadline(
    mock_clock: trio.testing.MockClock,
) -> None:
    server, submitted, metrics = recording_server()
    async with trio.open_nursery() as nursery:
        address = await nursery.start(server.run)
        stream = await trio.open_tcp_stream(*address)
        await stream.send_all(b'{"name": "half"')
        await trio.testing.wait_all_tasks_blocked()
        mock_clock.jump(READ_TIMEOUT + 1)
        reply = await stream.receive_some(200)
        await stream.aclose()
        nursery.cancel_scope.cancel()
    assert reply == b"invalid: no complete JSON within 5 s"
    assert submitted == []
    timeout = {"transport": "tcp", "reason": "timeout"}
    assert metrics.registry.get_sample_value("pipeline_agent_socket_errors_total", timeout) == 1


class RefusesOnce(socket.socket):
    """A listening socket whose first accept fails as when the process is out of descriptors."""

    refused = False

    def accept(self) -> tuple[socket.socket, object]:
        if not self.refused:
            self.refused = True
            raise OSError(errno.EMFILE, "Too many open files")
        return super().accept()


async def test_an_accept_the_system_refuses_is_counted_and_tried_again() -> None:
    server, submitted, metrics = recording_server()
    with RefusesOnce(socket.AF_INET, socket.SOCK_STREAM) as listener, trio.fail_after(10):
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        spooling, queued = trio.open_memory_channel[tuple[socket.socket, object, Event]](1)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server._accept_forever, listener, spooling, nursery)
            nursery.start_soon(server._answer_spooled, queued, nursery)
            reply = await tcp_exchange(listener.getsockname(), result("after-emfile"))
            nursery.cancel_scope.cancel()
    assert reply == b"ok"
    assert listener.refused
    assert [e.check_name for e in submitted] == ["after-emfile"]
    assert (
        metrics.registry.get_sample_value(
            "pipeline_agent_socket_errors_total", {"transport": "tcp", "reason": "accept"}
        )
        == 1
    )


async def test_a_result_larger_than_one_read_is_whole_and_one_over_the_limit_is_refused() -> None:
    server, submitted, metrics = recording_server()
    with trio.fail_after(READ_TIMEOUT - 1):
        async with trio.open_nursery() as nursery:
            address = await nursery.start(server.run)
            large = await tcp_exchange(address, json.dumps({"name": "large", "output": "x" * 300_000}).encode())
            over = b'{"name": "huge", "output": "' + b"x" * MAX_RESULT_BYTES + b'"}'
            huge = await tcp_exchange(address, over[: MAX_RESULT_BYTES + 1])  # all read: answered, not reset
            nursery.cancel_scope.cancel()
    assert large == b"ok"
    assert huge == b"invalid: a result must be at most 1048576 bytes"
    assert [(e.check_name, len(e.check.output) if e.check else 0) for e in submitted] == [("large", 300_000)]
    too_large = {"transport": "tcp", "reason": "too_large"}
    assert metrics.registry.get_sample_value("pipeline_agent_socket_errors_total", too_large) == 1


async def test_results_the_spool_cannot_take_in_time_are_refused_and_never_delivered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk under the agent: a result sent to its local API is answered 503 with
    Retry-After, one sent to its client socket ``error: ...``, once the spool has not taken them
    within SPOOL_WAIT (rather than holding their clients for as long as the disk is full); and,
    refused, they are not delivered once the disk has room: once the next result is stored,
    neither is (the spool is sent in order, and the backend stores a frame's events together)."""
    monkeypatch.setattr("pipeline.agent.delivery.SPOOL_WAIT", 1.0)
    # tries every 0.1 s: the result sent once the disk has room is written well within the wait
    monkeypatch.setattr("pipeline.agent.delivery.WRITE_RETRY_FIRST", 0.05)
    monkeypatch.setattr("pipeline.agent.delivery.WRITE_RETRY_MAX", 0.1)
    full = False
    real_write = os.write
    pipe = EventPipe(tmp_path / "events.fifo")
    backend = loopback_backend(tmp_path, write_config(tmp_path / "config", capture_handler(pipe.path)))
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            started = await start_backend_and_agent(nursery, tmp_path, backend, api=True, socket=True)
            segments = started.agent.delivery.spool.log._segments

            def full_disk(fd: int, data: bytes) -> int:
                if full and fd in {segment.fd for segment in segments.values()}:
                    raise OSError(errno.ENOSPC, "No space left on device")
                return real_write(fd, data)

            monkeypatch.setattr("pipeline.agent.spool_log.os.write", full_disk)
            full = True
            async with httpx.AsyncClient() as client:
                refused = await client.post(started.events_url, json={"check": {"metadata": {"name": "over-api"},
                                                                       "output": "lost?", "handlers": ["capture"]}})  # fmt: skip
            socket_reply = await tcp_exchange(started.socket, result("over-socket"))
            full = False
            after = await tcp_exchange(started.socket, result("after"))
            while (await pipe.next_event())["check"]["metadata"]["name"] != "after":
                pass
            async with httpx.AsyncClient(base_url=started.backend.api_url, headers=admin_headers(backend)) as client:
                listed = (await client.get("/api/core/v2/namespaces/default/events")).json()
            nursery.cancel_scope.cancel()
    await pipe.aclose()
    assert (refused.status_code, refused.headers["retry-after"]) == (503, "10")
    message = "the agent's spool could not write the event within 1 s (a full or failing disk?); it was not spooled"
    assert refused.json()["message"].startswith(message)
    assert socket_reply.startswith(b"error: " + message.encode())
    assert after == b"ok"
    stored = {event["check"]["metadata"]["name"] for event in listed if event.get("check")}
    assert "after" in stored
    assert not stored & {"over-api", "over-socket"}  # refused, and never delivered
    registry = started.agent.metrics.registry
    assert registry.get_sample_value("pipeline_agent_spool_timeouts_total") == 2
    assert registry.get_sample_value("pipeline_agent_socket_errors_total", {"transport": "tcp", "reason": "spool"}) == 1
    assert (registry.get_sample_value("pipeline_agent_spool_write_failures_total") or 0) >= 1

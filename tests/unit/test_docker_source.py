"""The ``docker`` source against a stand-in Docker daemon on a real unix socket, for what a real
dockerd does not do on demand: a bad line, a stream cut inside a line or inside a chunk, a
refusal. (tests/e2e/test_host_docker.py runs it against the real dockerd.)"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import trio
from prometheus_client import CollectorRegistry

from pipeline.agent.sources.base import SourceContext, SourceSettings
from pipeline.agent.sources.docker import STATE_FILE, make
from pipeline.errors import DockerEventsError
from pipeline.model import Entity, Event, ObjectMeta

ENTITY = Entity(metadata=ObjectMeta(name="host1", namespace="default"))
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"


def event_line(n: int, second: int = 1700000000) -> bytes:
    document = {"Type": "container", "Action": "start", "Actor": {"ID": f"c{n}", "Attributes": {"name": f"web{n}"}},
                "scope": "local", "time": second, "timeNano": second * 1_000_000_000 + n}  # fmt: skip
    return json.dumps(document).encode() + b"\n"


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


END = b"0\r\n\r\n"


@dataclass
class FakeDocker:
    """Answers each connection with the next of ``replies`` (raw bytes, then it closes)."""

    path: Path
    replies: list[bytes]
    requests: list[str] = field(default_factory=list)
    #: keep each connection open after its reply (a quiet stream), until the fake stops
    keep_open: bool = False

    def since(self, index: int) -> str | None:
        values = parse_qs(urlsplit(self.requests[index]).query).get("since")
        return values[0] if values else None

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listener = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        await listener.bind(str(self.path))
        listener.listen()
        await trio.serve_listeners(self._answer, [trio.SocketListener(listener)], task_status=task_status)

    async def _answer(self, stream: trio.SocketStream) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            head += await stream.receive_some(65536)
        self.requests.append(head.split(b" ")[1].decode())
        await stream.send_all(self.replies.pop(0))
        if self.keep_open:
            await trio.sleep_forever()
        await stream.aclose()


@asynccontextmanager
async def fake_docker(tmp_path: Path, *replies: bytes) -> AsyncIterator[FakeDocker]:
    fake = FakeDocker(tmp_path / "docker.sock", list(replies))
    async with trio.open_nursery() as nursery:
        await nursery.start(fake.serve)
        yield fake
        nursery.cancel_scope.cancel()


def source_of(socket_path: Path, registry: CollectorRegistry, state_dir: Path | None = None) -> Callable[..., object]:
    settings = SourceSettings(docker_socket=socket_path, state_dir=state_dir)
    return make(SourceContext(entity=ENTITY, settings=settings, registry=registry)).run


async def run_until_failure(run: Callable[..., object]) -> tuple[DockerEventsError, list[Event]]:
    send, receive = trio.open_memory_channel[Event](100)
    with trio.fail_after(10), pytest.raises(DockerEventsError) as caught:
        await run(send)  # type: ignore[misc]
    send.close()
    return caught.value, [event async for event in receive]


def outputs(events: list[Event]) -> list[str]:
    return [event.check.output for event in events]


def errors(registry: CollectorRegistry, reason: str) -> float | None:
    return registry.get_sample_value("pipeline_agent_docker_stream_errors_total", {"reason": reason})


async def test_events_are_sent_and_the_daemon_closing_the_stream_is_a_failure(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    async with fake_docker(tmp_path, HEAD + chunk(event_line(1) + event_line(2)) + END) as fake:
        error, events = await run_until_failure(source_of(fake.path, registry))
    assert error.reason == "ended"
    assert outputs(events) == ["Docker Event: container start web1", "Docker Event: container start web2"]
    assert fake.since(0) is None  # first start: live events only
    assert errors(registry, "ended") == 1
    assert registry.get_sample_value("pipeline_agent_docker_events_total", {"type": "container"}) == 2


async def test_a_bad_line_fails_the_source_and_its_replay_is_skipped_without_duplicates(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    stream = event_line(1) + b'{"Type": "container", "Act\n' + event_line(2)
    async with fake_docker(tmp_path, HEAD + chunk(stream) + END, HEAD + chunk(stream + event_line(3)) + END) as fake:
        run = source_of(fake.path, registry)
        error, events = await run_until_failure(run)
        assert error.reason == "bad_line"
        assert outputs(events) == ["Docker Event: container start web1"]
        # restarted (by the agent, after a backoff): it resumes at web1's instant, Docker replays
        error, events = await run_until_failure(run)
    assert fake.since(1) == "1700000000.000000001"
    assert error.reason == "ended"
    assert outputs(events) == ["Docker Event: container start web2", "Docker Event: container start web3"]
    assert errors(registry, "bad_line") == 1
    assert registry.get_sample_value("pipeline_agent_docker_events_skipped_total", {"reason": "duplicate"}) == 1
    assert registry.get_sample_value("pipeline_agent_docker_events_skipped_total", {"reason": "bad_line"}) == 1


async def test_a_stream_cut_inside_a_chunk_is_truncated(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    cut = HEAD + chunk(event_line(1)) + b"400\r\n" + event_line(2)[:20]  # a chunk of 1024 bytes, 20 sent
    async with fake_docker(tmp_path, cut) as fake:
        error, events = await run_until_failure(source_of(fake.path, registry))
    assert error.reason == "truncated"
    assert outputs(events) == ["Docker Event: container start web1"]
    assert errors(registry, "truncated") == 1


async def test_a_stream_ending_inside_a_line_is_truncated(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    async with fake_docker(tmp_path, HEAD + chunk(event_line(1) + event_line(2)[:30]) + END) as fake:
        error, events = await run_until_failure(source_of(fake.path, registry))
    assert error.reason == "truncated"
    assert "inside a line" in error.detail
    assert len(events) == 1


async def test_a_refusal_is_a_failure_naming_the_status(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    body = b'{"message":"client version 1.99 is too new"}'
    refusal = b"HTTP/1.1 400 Bad Request\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    async with fake_docker(tmp_path, refusal) as fake:
        error, events = await run_until_failure(source_of(fake.path, registry))
    assert error.reason == "http_status"
    assert "HTTP 400" in error.detail
    assert "too new" in error.detail
    assert events == []


async def test_no_daemon_is_a_connect_failure(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    error, _ = await run_until_failure(source_of(tmp_path / "absent.sock", registry))
    assert error.reason == "connect"
    assert str(tmp_path / "absent.sock") in str(error)
    assert errors(registry, "connect") == 1


async def test_the_resume_point_in_the_state_dir_survives_the_agent(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = HEAD + chunk(event_line(1) + event_line(2)) + END
    replay = HEAD + chunk(event_line(2) + event_line(3, second=1700000001)) + END
    async with fake_docker(tmp_path, first, replay) as fake:
        await run_until_failure(source_of(fake.path, CollectorRegistry(), state))
        saved = json.loads((state / STATE_FILE).read_text())
        assert saved["time_nano"] == 1700000000_000000002
        # a new agent: a new source, a new registry, the same state_dir
        _, events = await run_until_failure(source_of(fake.path, CollectorRegistry(), state))
    assert fake.since(1) == "1700000000.000000002"
    assert outputs(events) == ["Docker Event: container start web3"]


async def test_a_resume_point_that_does_not_load_is_counted_and_the_source_reads_live(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / STATE_FILE).write_text('{"time_nano": "yesterday"}')
    registry = CollectorRegistry()
    async with fake_docker(tmp_path, HEAD + chunk(event_line(1)) + END) as fake:
        _, events = await run_until_failure(source_of(fake.path, registry, state))
    assert fake.since(0) is None
    assert len(events) == 1
    assert registry.get_sample_value("pipeline_agent_docker_state_errors_total", {"operation": "load"}) == 1


async def test_it_says_it_started_once_docker_answered(tmp_path: Path) -> None:
    send, receive = trio.open_memory_channel[Event](10)
    async with fake_docker(tmp_path, HEAD + chunk(event_line(1))) as fake:
        fake.keep_open = True
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                await nursery.start(source_of(fake.path, CollectorRegistry()), send)
                assert fake.requests == ["/events"]
                assert (await receive.receive()).check.metadata.name == "docker-container-start"
                nursery.cancel_scope.cancel()

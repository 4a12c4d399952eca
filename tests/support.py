"""Helpers for tests that run real daemons: config directories, and a FIFO that handlers write to.

A handler writes each event as one JSON line into a named pipe; the test reads the pipe as
lines arrive, so it synchronises on the events themselves rather than on sleeps.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import trio

from pipeline.agent.agent import Agent, AgentAddresses
from pipeline.agent.settings import AgentConfig
from pipeline.backend.server import Backend, BackendAddresses, BackendConfig
from pipeline.config import load_directory
from pipeline.wire.messages import Message, encode_message

REPO = Path(__file__).resolve().parents[1]
EVENT_FILE_HANDLER = REPO / "handlers" / "event-file"


def write_config(directory: Path, yaml_text: str, name: str = "resources.yml") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(textwrap.dedent(yaml_text))
    return directory


class EventPipe:
    """A named pipe that handlers append JSON lines to; ``await next_event()`` reads one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        os.mkfifo(path)
        # Opened read-write so that the pipe never reports end-of-file between handler runs.
        self._stream = trio.lowlevel.FdStream(os.open(path, os.O_RDWR | os.O_NONBLOCK))
        self._buffer = b""

    async def next_event(self) -> dict[str, Any]:
        while b"\n" not in self._buffer:
            self._buffer += await self._stream.receive_some(65536)
        line, _, self._buffer = self._buffer.partition(b"\n")
        event: dict[str, Any] = json.loads(line)
        return event

    async def next_matching(self, predicate: Any, limit: int = 50) -> dict[str, Any]:
        """The next event for which ``predicate(event)`` holds, among the next ``limit``."""
        for _ in range(limit):
            event = await self.next_event()
            if predicate(event):
                return event
        raise AssertionError(f"no matching event among {limit}")

    async def aclose(self) -> None:
        await self._stream.aclose()


def capture_handler(pipe: Path, name: str = "capture") -> str:
    """YAML of a pipe handler that writes every event it gets into ``pipe`` (handlers/event-file)."""
    return f"""
        type: Handler
        api_version: core/v2
        metadata: {{name: {name}}}
        spec:
          type: pipe
          command: {EVENT_FILE_HANDLER} {pipe}
          timeout: 10
        """


def loopback_backend(tmp_path: Path, config: Path, **settings: Any) -> Backend:
    """A backend on free loopback ports with the resources of ``config`` and other ``settings``
    of BackendConfig (keys, TLS, limits)."""
    return Backend(
        BackendConfig(
            data_dir=tmp_path / "data",
            resources=load_directory(config),
            api_addr=("127.0.0.1", 0),
            transport_addr=("127.0.0.1", 0),
            **settings,
        )
    )


@dataclass(slots=True, frozen=True)
class StartedAgent:
    """An agent started beside its backend (:func:`start_backend_and_agent`), and where it listens."""

    agent: Agent
    addresses: AgentAddresses
    backend: BackendAddresses

    @property
    def api(self) -> tuple[str, int]:
        assert self.addresses.api is not None, "started without its local API"
        return self.addresses.api

    @property
    def socket(self) -> tuple[str, int]:
        assert self.addresses.socket is not None, "started without its client socket"
        return self.addresses.socket

    @property
    def events_url(self) -> str:
        """The local API's ``POST /events``."""
        return "http://{}:{}/events".format(*self.api)


async def start_backend_and_agent(
    nursery: trio.Nursery, tmp_path: Path, backend: Backend, *, api: bool = False, socket: bool = False
) -> StartedAgent:
    """Start ``backend``, then an agent named ``web1`` connected to it, its data in
    ``tmp_path / "agent"``, with its local API and client socket on free loopback ports when
    asked for."""
    addresses = await nursery.start(backend.run)
    agent = Agent(AgentConfig(name="web1", backend_addrs=[addresses.transport], data_dir=tmp_path / "agent",
                              api_addr=("127.0.0.1", 0) if api else None,
                              socket_addr=("127.0.0.1", 0) if socket else None))  # fmt: skip
    return StartedAgent(agent, await nursery.start(agent.run), addresses)


@dataclass(slots=True, frozen=True)
class Served:
    """A running backend's addresses, and an API client holding its admin key."""

    addresses: BackendAddresses
    client: httpx.AsyncClient

    @property
    def api_key(self) -> str:
        return str(self.client.headers["Authorization"]).removeprefix("Key ")


@asynccontextmanager
async def served(backend: Backend, *, seconds: float = 30) -> AsyncIterator[Served]:
    """Run ``backend`` for the block (at most ``seconds``), with an admin API client; stopped after."""
    with trio.fail_after(seconds):
        async with trio.open_nursery() as nursery:
            addresses = await nursery.start(backend.run)
            async with httpx.AsyncClient(base_url=addresses.api_url, headers=admin_headers(backend)) as client:
                yield Served(addresses, client)
            nursery.cancel_scope.cancel()


def admin_headers(backend: Backend) -> dict[str, str]:
    """The Authorization header of the admin key a backend without keys creates in its data directory."""
    assert backend.admin_key is not None
    return {"Authorization": f"Key {backend.admin_key}"}


def pipeline_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "pipeline.cli.main", *args]


async def wait_for_exit(pid: int) -> None:
    """Return once ``pid`` has terminated (a pidfd becomes readable when it does; a zombie counts)."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return  # already gone and reaped
    try:
        with trio.fail_after(5):
            await trio.lowlevel.wait_readable(pidfd)
    finally:
        os.close(pidfd)


def free_port() -> int:
    """A port on 127.0.0.1 free a moment ago (for a daemon given its address on the command line)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Daemon:
    """A ``pipeline`` process's stderr, kept whole, with a way to wait for a line."""

    name: str
    log: bytearray = field(default_factory=bytearray)
    #: the running process (to kill it: ``daemon.process.kill()``)
    process: trio.Process | None = None
    _changed: trio.Event = field(default_factory=trio.Event)

    @property
    def text(self) -> str:
        return self.log.decode(errors="replace")

    async def wait_for(self, text: str, count: int = 1) -> None:
        """Until ``text`` has been logged ``count`` times."""
        while self.text.count(text) < count:
            await self._changed.wait()
        assert self.text.count(text) >= count

    async def run(self, args: list[str], env: dict[str, str], ready: str, *, cwd: Path | None = None,
                  program: Sequence[str] | None = None,
                  task_status: trio.TaskStatus[Daemon] = trio.TASK_STATUS_IGNORED) -> None:  # fmt: skip
        """Run ``pipeline args`` (``program`` instead of this interpreter's ``pipeline``, if given)."""
        command = [*program, *args] if program is not None else pipeline_command(*args)
        async with trio.open_nursery() as nursery:
            process = await nursery.start(partial(trio.run_process, command, env=env, check=False, cwd=cwd,
                                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))  # fmt: skip
            self.process = process
            nursery.start_soon(self._read, process.stderr)
            with trio.fail_after(30):
                await self.wait_for(ready)
            task_status.started(self)

    async def _read(self, stream: trio.abc.ReceiveStream) -> None:
        async for chunk in stream:
            self.log += chunk
            self._changed.set()
            self._changed = trio.Event()


def record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def build_wheel(tmp_path: Path) -> Path:
    """A minimal pure-Python wheel (PEP 427), written by hand: no build backend, no network."""
    info = "tiny_probe-0.1.0.dist-info"
    files = {
        "tiny_probe/__init__.py": b"VALUE = 1\n",
        f"{info}/METADATA": b"Metadata-Version: 2.1\nName: tiny_probe\nVersion: 0.1.0\nSummary: probe\n",
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: pipeline-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(record_line(name, data) + "\n" for name, data in files.items()) + f"{info}/RECORD,,\n"
    wheel = tmp_path / "tiny_probe-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        archive.writestr(f"{info}/RECORD", record)
    return wheel


def wire_map(message: Message | None) -> dict[str, Any]:
    """A received message as its wire map (``{}`` when the peer closed), for tests that assert on it."""
    return {} if message is None else encode_message(message)

"""kill -9, from outside: the backend and the agent are real processes, killed while events flow.

Checked: every event accepted by the agent's API is stored exactly once, in order, and the
check's history and occurrences are what they would have been without the kills.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import sqlite3
import subprocess
import threading
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path

import httpx
import msgpack
import pytest

from pipeline.core.state import apply_result
from pipeline.model import Check, ObjectMeta
from tests.support import capture_handler, pipeline_command, write_config

pytestmark = pytest.mark.e2e

DEADLINE = 60.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Daemon:
    """A ``pipeline`` daemon as a child process; a thread copies its log lines to a file and
    wakes whoever waits for one."""

    def __init__(self, log: Path, *args: str, wrapper: Sequence[str] = ()) -> None:
        """``wrapper``: a command that runs the daemon's in its place (``prlimit ... --``)."""
        self.log = log
        self.lines: list[str] = []
        self._arrived = threading.Condition()
        self.process = subprocess.Popen([*wrapper, *pipeline_command(*args)], stderr=subprocess.PIPE,
                                        stdout=subprocess.DEVNULL)  # fmt: skip
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        with self.log.open("ab") as copy:
            for raw in self.process.stderr:
                copy.write(raw)
                with self._arrived:
                    self.lines.append(raw.decode(errors="replace"))
                    self._arrived.notify_all()
        with self._arrived:
            self._arrived.notify_all()  # the process ended

    def logged(self, text: str, count: int = 1) -> bool:
        return sum(text in line for line in self.lines) >= count

    def wait_for_log(self, text: str, count: int = 1) -> None:
        """Wait until ``count`` lines hold ``text`` (or the process ends: the assertion says so)."""
        with self._arrived:
            self._arrived.wait_for(lambda: self.logged(text, count) or not self._reader.is_alive(), DEADLINE)
        assert self.logged(text, count), f"not {count} of {text!r} in the log: {''.join(self.lines)[-2000:]}"

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        self._reader.join(timeout=10)
        if self.process.stderr is not None:
            self.process.stderr.close()


@contextmanager
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    try:
        yield started
    finally:
        for daemon in started:
            daemon.stop()


class Setup:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.fifo = tmp_path / "marker.fifo"
        os.mkfifo(self.fifo)
        # held open read-write, so that it never reports end-of-file between handler runs
        self._fifo_fd = os.open(self.fifo, os.O_RDWR | os.O_NONBLOCK)
        self.config = write_config(tmp_path / "config", capture_handler(self.fifo, "marker"))
        self.transport = free_port()
        self.agent_api = free_port()

    def backend(self, started: list[Daemon]) -> Daemon:
        log = self.tmp / "backend.log"
        daemon = Daemon(log, "backend", "--config", str(self.config), "--data", str(self.tmp / "backend"),
                        "--api-addr", f"127.0.0.1:{free_port()}", "--transport-addr", f"127.0.0.1:{self.transport}")  # fmt: skip
        started.append(daemon)
        daemon.wait_for_log("backend ready")
        return daemon

    def agent(self, started: list[Daemon]) -> Daemon:
        log = self.tmp / "agent.log"
        daemon = Daemon(log, "agent", "--name", "web1", "--backend-addr", f"127.0.0.1:{self.transport}",
                        "--data", str(self.tmp / "agent"), "--api-addr", f"127.0.0.1:{self.agent_api}",
                        "--socket-addr", "", "--statsd-addr", "")  # fmt: skip
        started.append(daemon)
        daemon.wait_for_log("agent API listening")
        return daemon

    def send_marker_and_wait(self, client: httpx.Client) -> None:
        """Send one last event whose handler writes to a FIFO; the agent delivers in order and the
        backend stores in order, so once it is handled every event before it is stored."""
        body = {"check": {"metadata": {"name": "marker"}, "status": 0, "output": "the end", "handlers": ["marker"]}}
        assert client.post("/events", json=body).status_code == 202
        readable, _, _ = select.select([self._fifo_fd], [], [], DEADLINE)
        assert readable, "the marker event never reached its handler"
        assert b"the end" in os.read(self._fifo_fd, 65536)

    def close(self) -> None:
        os.close(self._fifo_fd)

    def stored(self) -> list[tuple[str, bytes]]:
        """(id, event) of every stored result of the ``burst`` check, in the order stored."""
        path = self.tmp / "backend" / "events.db"
        if not path.exists():
            return []
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)) as db:
            try:
                rows = db.execute("SELECT id, event FROM event_log WHERE check_name = 'burst' ORDER BY seq").fetchall()
            except sqlite3.OperationalError:
                return []  # the schema is not there yet
        return [(r[0], r[1]) for r in rows]


def status_of(i: int) -> int:
    return (i // 7) % 3  # runs of equal statuses, so occurrences count up and reset


def post(client: httpx.Client, i: int) -> None:
    body = {"check": {"metadata": {"name": "burst"}, "status": status_of(i), "output": str(i)}}
    response = client.post("/events", json=body)
    assert response.status_code == 202, response.text


def expected_check(count: int) -> Check:
    previous = None
    for i in range(count):
        check = Check(metadata=ObjectMeta(name="burst", namespace="default"), status=status_of(i), output=str(i),
                      interval=1, executed=1_800_000_000 + i)  # fmt: skip
        previous = apply_result(check, previous)
    assert previous is not None
    return previous


def assert_stored_exactly_once_in_order(setup: Setup, count: int) -> None:
    rows = setup.stored()
    outputs = [msgpack.unpackb(blob)["check"]["output"] for _, blob in rows]
    assert outputs == [str(i) for i in range(count)]  # each once, in the order accepted
    assert len({event_id for event_id, _ in rows}) == count
    latest = msgpack.unpackb(rows[-1][1])["check"]
    expected = expected_check(count)
    assert [h["status"] for h in latest["history"]] == [h.status for h in expected.history]
    assert (latest["occurrences"], latest["occurrences_watermark"], latest["total_state_change"]) == (
        expected.occurrences, expected.occurrences_watermark, expected.total_state_change)  # fmt: skip


def test_backend_killed_repeatedly_while_events_flow_loses_and_repeats_nothing(tmp_path: Path) -> None:
    count, kills = 3000, 3
    setup = Setup(tmp_path)
    with daemons() as started:
        backend = setup.backend(started)
        setup.agent(started)
        with httpx.Client(base_url=f"http://127.0.0.1:{setup.agent_api}", timeout=30) as client:
            for i in range(count):
                post(client, i)
                if i and i % (count // (kills + 1)) == 0:
                    backend.kill()  # mid-flow: events in flight, a batch maybe half-written
                    backend = setup.backend(started)
            setup.send_marker_and_wait(client)
    setup.close()
    assert_stored_exactly_once_in_order(setup, count)
    assert (tmp_path / "backend.log").read_text().count("backend ready") == kills + 1


def test_an_agent_killed_with_a_full_spool_delivers_it_after_restart(tmp_path: Path) -> None:
    count = 500
    setup = Setup(tmp_path)
    with daemons() as started:
        agent = setup.agent(started)  # no backend yet: the agent starts anyway, and spools
        with httpx.Client(base_url=f"http://127.0.0.1:{setup.agent_api}", timeout=30) as client:
            assert client.get("/healthz").status_code == 503
            for i in range(count):
                post(client, i)  # each 202 means: on disk
        agent.kill()
        setup.backend(started)
        setup.agent(started)
        with httpx.Client(base_url=f"http://127.0.0.1:{setup.agent_api}", timeout=30) as client:
            setup.send_marker_and_wait(client)
    setup.close()
    assert_stored_exactly_once_in_order(setup, count)


def test_a_second_backend_on_the_same_data_directory_is_refused(tmp_path: Path) -> None:
    """Two backends on one --data shared its intake journal: the second's replay deleted the
    segment the first was appending to, whose records (answered 201) a crash then lost."""
    config = write_config(tmp_path / "config", "")
    with daemons() as started:
        first = Daemon(tmp_path / "first.log", "backend", "--config", str(config), "--data", str(tmp_path / "data"),
                       "--api-addr", f"127.0.0.1:{free_port()}", "--transport-addr", f"127.0.0.1:{free_port()}")  # fmt: skip
        started.append(first)
        first.wait_for_log("backend ready")
        second = subprocess.run(pipeline_command("backend", "--config", str(config), "--data", str(tmp_path / "data"),
                                                 "--api-addr", "127.0.0.1:0", "--transport-addr", "127.0.0.1:0"),
                                capture_output=True, text=True, timeout=DEADLINE)  # fmt: skip
        assert second.returncode == 1
        assert (f"pipeline: cannot run: {tmp_path / 'data'} is in use by process {first.process.pid} "
                "(its backend lock): give each daemon its own --data") in second.stderr  # fmt: skip
        assert first.process.poll() is None  # the first goes on

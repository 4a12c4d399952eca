"""The same datagrams sent to etsy StatsD and to pipeline's agent give the same Graphite series.

etsy StatsD (npm ``statsd`` 0.9.0, installed into a cache directory on first use) and the agent
both flush every second; each writes to its own loopback Carbon receiver (etsy's Graphite
backend, and pipeline's ``handlers/graphite`` behind a real backend). A warm-up datagram
shows each side's flush phase; the corpus is sent right after both have flushed, so one flush
on each side holds all of it. etsy's own ``statsd.*`` series are left out of the comparison.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
import trio

from pipeline.agent.agent import Agent
from pipeline.agent.settings import AgentConfig
from pipeline.agent.statsd import StatsdConfig
from tests.support import REPO, loopback_backend, write_config

pytestmark = pytest.mark.e2e

ETSY_VERSION = "0.9.0"
ETSY_DIR = Path(os.environ.get("PIPELINE_ETSY_STATSD_DIR", Path.home() / ".cache" / "pipeline-tests" / "etsy-statsd"))

CORPUS = [
    b"gorets:1|c|@0.1\nglork:320|ms\ngaugor:333|g\nuniques:765|s",
    b"hits:1|c\nhits:2|c\nhits:3|c|@0.5\nhits:4|c:5|c",
    b"g:10|g\ng:+5|g\ng:-3|g\nzero:0|g\nzero:-5|g\nneg:-7|g",
    b"\n".join(f"t:{i}|ms".encode() for i in range(1, 21)),
    b"t2:100|ms|@0.5\nt2:200|ms|@0.5\nt2:150|ms",
    b"u:a|s\nu:b|s\nu:a|s\nu:|s",
    b"req:1|c|#env:prod,region:eu\nreq:2|c|#env:prod,region:eu\nlat:12|ms|#env:prod",
    b"my metric/x!:1|c\nbad\nworse:1|c|@-1\nneg:-5|ms\nnan:abc|g\nok.after.bad:7|c",
    b"float:0.1|c\nfloat:0.2|c\ntf:0.1|ms\ntf:0.7|ms\ntf:0.3|ms",
]


@pytest.fixture(scope="session")
def etsy_statsd() -> Path:
    script = ETSY_DIR / "node_modules" / "statsd" / "stats.js"
    if not script.exists():
        npm = shutil.which("npm")
        assert npm, "this test runs etsy StatsD: it needs node and npm"
        subprocess.run([npm, "install", "--prefix", str(ETSY_DIR), "--no-audit", "--no-fund", f"statsd@{ETSY_VERSION}"],
                       check=True, capture_output=True, timeout=300)  # fmt: skip
    return script


class Carbon:
    """A loopback Carbon plaintext receiver: every line received, and an event per arrival.

    Both sides write one flush per connection, so a connection closing marks a flush complete.
    """

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.closed_at: list[int] = []  # len(lines) when each connection closed
        self.arrived = trio.Event()

    def _wake(self) -> None:
        self.arrived.set()
        self.arrived = trio.Event()

    async def serve(self, stream: trio.SocketStream) -> None:
        buffer = b""
        async for chunk in stream:
            buffer += chunk
            *complete, buffer = buffer.split(b"\n")
            self.lines.extend(line.decode() for line in complete)
            self._wake()
        self.closed_at.append(len(self.lines))
        self._wake()

    async def wait_for_flush_end(self, index: int) -> None:
        """Until the connection that carried line ``index - 1`` has closed (its flush is whole)."""
        while not any(closed >= index for closed in self.closed_at):
            await self.arrived.wait()

    async def wait_for(self, predicate: object, start: int = 0) -> int:
        """Index just past the first line from ``start`` on for which ``predicate(line)`` holds."""
        while True:
            for i in range(start, len(self.lines)):
                if predicate(self.lines[i]):  # type: ignore[operator]
                    return i + 1
            await self.arrived.wait()


def flush_of(lines: list[str], marker: str) -> dict[str, str]:
    """name -> value of the flush (one timestamp) that holds the series ``marker``."""
    parsed = [line.split(" ") for line in lines if line.count(" ") == 2]
    stamp = next(ts for name, _, ts in parsed if name == marker)
    return {name: value for name, value, ts in parsed
            if ts == stamp and not name.startswith(("stats.statsd.", "stats.counters.statsd.", "stats.gauges.statsd.")) and "warmup" not in name}  # fmt: skip


async def listen(nursery: trio.Nursery, carbon: Carbon) -> int:
    listeners = await nursery.start(trio.serve_tcp, carbon.serve, 0)
    return int(listeners[0].socket.getsockname()[1])


async def _drain(stream: trio.abc.ReceiveStream) -> None:
    while await stream.receive_some(4096):
        pass


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_etsy_and_pipeline_flush_the_same_series(etsy_statsd: Path, tmp_path: Path) -> None:
    etsy_carbon, ours_carbon = Carbon(), Carbon()
    with trio.move_on_after(20) as guard:
        async with trio.open_nursery() as nursery:
            etsy_carbon_port = await listen(nursery, etsy_carbon)
            ours_carbon_port = await listen(nursery, ours_carbon)
            etsy_port = free_udp_port()
            config = tmp_path / "etsy.js"
            config.write_text(
                f'{{ port: {etsy_port}, address: "127.0.0.1", mgmt_port: 0, mgmt_address: "127.0.0.1", '
                f'graphiteHost: "127.0.0.1", graphitePort: {etsy_carbon_port}, flushInterval: 1000, '
                f"graphite: {{ legacyNamespace: false }}, percentThreshold: [90, 99] }}"
            )
            etsy = await trio.lowlevel.open_process(["node", str(etsy_statsd), str(config)], stdout=subprocess.PIPE)
            nursery.start_soon(etsy.wait)
            assert etsy.stdout is not None
            started = b""
            while b"server is up" not in started:  # etsy's own words once its UDP socket is bound
                chunk = await etsy.stdout.receive_some(4096)
                assert chunk, f"etsy StatsD exited: {started.decode()}"
                started += chunk
            nursery.start_soon(_drain, etsy.stdout)
            handler = f"""
                type: Handler
                api_version: core/v2
                metadata: {{name: graphite}}
                spec:
                  type: pipe
                  command: {REPO / "handlers" / "graphite"} --port {ours_carbon_port}
                  timeout: 10
                """
            backend = loopback_backend(tmp_path, write_config(tmp_path / "config", handler))
            addresses = await nursery.start(backend.run)
            statsd = StatsdConfig(addr=("127.0.0.1", 0), flush_interval=1.0, percentiles=[90.0, 99.0],
                                  event_handlers=["graphite"])  # fmt: skip
            agent = Agent(
                AgentConfig(name="statsd-test", backend_addrs=[addresses.transport], api_addr=None, statsd=statsd)
            )
            ours = (await nursery.start(agent.run)).statsd
            targets = [("127.0.0.1", etsy_port), ours]

            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
                for target in targets:
                    client.sendto(b"warmup:1|c", target)
                # Both have flushed the warm-up: the next flush on each side is a full second away.
                etsy_seen = await etsy_carbon.wait_for(lambda line: line.startswith("stats.counters.warmup.count 1 "))
                ours_seen = await ours_carbon.wait_for(lambda line: line.startswith("stats.counters.warmup.count 1 "))
                for datagram in CORPUS:
                    for target in targets:
                        client.sendto(datagram, target)
            marker = "stats.counters.gorets.count"
            etsy_marker = await etsy_carbon.wait_for(lambda line: line.startswith(marker + " "), etsy_seen)
            ours_marker = await ours_carbon.wait_for(lambda line: line.startswith(marker + " "), ours_seen)
            await etsy_carbon.wait_for_flush_end(etsy_marker)  # the rest of that flush's lines, on both sides
            await ours_carbon.wait_for_flush_end(ours_marker)
            nursery.cancel_scope.cancel()
    etsy.kill()
    await etsy.wait()
    await etsy.stdout.aclose()
    seen = {"etsy": [x for x in etsy_carbon.lines if "gorets" in x or "warmup" in x][:6],
            "pipeline": [x for x in ours_carbon.lines if "gorets" in x or "warmup.count 1" in x][:6]}  # fmt: skip
    assert not guard.cancelled_caught, seen
    expected = flush_of(etsy_carbon.lines[etsy_seen:], marker)
    actual = flush_of(ours_carbon.lines[ours_seen:], marker)
    assert len(expected) > 100
    differences = {
        k: (actual.get(k), expected.get(k)) for k in actual.keys() | expected.keys() if actual.get(k) != expected.get(k)
    }
    assert differences == {}, "(pipeline, etsy) per series"

"""Check results per second through the agent transport into one backend, the senders in another process.

The backend runs in this process (SQLite in a temporary directory, WAL); a child process runs
``--agents`` synthetic agents, each on its own connection speaking the real wire protocol over
loopback TCP: ``events`` frames of up to 200 events, each event the msgpack bytes the agent
spools, with a window of 1,000 unacknowledged events (the agent's BATCH_MAX and SEND_WINDOW).
Every event names ``count``, an in-process plugin handler (:class:`bench.sink.Counting`) that
only counts. Statuses cycle 0/1/2 per check, so history, occurrences and flapping are computed
for every event. Reported:

- stored/s: events acknowledged (decoded, validated, deduplicated, state computed, written to
  SQLite with their handler job, durable) per second, first send to last ack;
- handled/s: events the plugin handler has been given, per second, first send to the last one;
- backend CPU us/result: this process's CPU time (user + system, every thread: the store's
  writes run in threads) from the first send to the last event handled, per result; the
  steadier figure on a shared machine. The senders' own CPU is shown beside it, and the
  mean number of results per store transaction.

Usage: python -m bench.transport [--events N] [--checks M] [--agents K] [--rounds R] [--log-level L]

The backend logs at ``--log-level`` (info by default, as ``pipeline backend`` runs), to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import trio

from bench.sink import Counting
from bench.table import Row, record
from pipeline import heap, logs
from pipeline.agent.delivery import BATCH_MAX, SEND_WINDOW
from pipeline.backend.server import Backend, BackendConfig
from pipeline.config import load_directory
from pipeline.model import Check, Entity, Event, ObjectMeta
from pipeline.model.codec import encode
from pipeline.wire.messages import Ack, Checks, Events, Hello
from pipeline.wire.stream import MessageStream

HANDLER = """
type: Handler
api_version: core/v2
metadata: {name: count}
spec:
  type: plugin
  plugin: bench.sink:Counting
  timeout: 10
"""


# -- the senders (child process) -------------------------------------------------------------


def agent_entity(agent: int) -> Entity:
    return Entity(entity_class="agent", metadata=ObjectMeta(name=f"bench-agent-{agent}", namespace="default"),
                  subscriptions=["linux"])  # fmt: skip


def make_events(agent: int, count: int, checks: int) -> list[bytes]:
    """``count`` events of ``checks`` checks, as the agent spools them (msgpack bytes)."""
    entity = agent_entity(agent)
    now = int(time.time())
    out = []
    for i in range(count):
        check = Check(
            metadata=ObjectMeta(name=f"check-{i % checks}", namespace="default"),
            command="/usr/lib/nagios/plugins/check_dummy 0",
            interval=10,
            subscriptions=["linux"],
            status=(i // checks) % 3,
            output="OK - bench | value=1;2;3",
            executed=now,
            issued=now,
            duration=0.01,
            handlers=["count"],
        )
        event = Event(timestamp=now, entity=entity, check=check, id=str(uuid.uuid4()))
        out.append(event.to_msgpack())
    return out


async def connect(address: tuple[str, int], agent: int) -> MessageStream:
    stream = MessageStream(await trio.open_tcp_stream(*address), "backend")
    await stream.send(Hello(f"bench-agent-{agent}", "default", ("linux",), encode(agent_entity(agent))))
    while not isinstance(await stream.receive(), Checks):
        pass
    return stream


async def send_all(stream: MessageStream, events: list[bytes]) -> float:
    """Send every event with the agent's window; the monotonic time of the last ack."""
    window = trio.Semaphore(SEND_WINDOW)
    acked = 0
    async with trio.open_nursery() as nursery:

        async def sender() -> None:
            for start in range(0, len(events), BATCH_MAX):
                batch = events[start : start + BATCH_MAX]
                for _ in batch:
                    await window.acquire()
                await stream.send(Events(tuple(batch)))

        nursery.start_soon(sender)
        while acked < len(events):
            message = await stream.receive()
            assert isinstance(message, Ack), message
            assert not message.rejected, message.rejected
            for _ in message.ids:
                window.release()
            acked += len(message.ids)
    last_ack = time.monotonic()
    await stream.aclose()
    return last_ack


async def senders(host: str, port: int, agents: int, events: int, checks: int) -> None:
    """The child: connect every agent, say ``ready``, wait for ``go`` on stdin, send, print times."""
    per_agent = [make_events(a, events // agents, checks // agents) for a in range(agents)]
    streams = [await connect((host, port), a) for a in range(agents)]
    print("ready", flush=True)
    await trio.to_thread.run_sync(sys.stdin.readline)
    started = time.monotonic()
    last_acks: list[float] = []
    async with trio.open_nursery() as nursery:
        for stream, batch in zip(streams, per_agent, strict=True):

            async def one(stream: MessageStream = stream, batch: list[bytes] = batch) -> None:
                last_acks.append(await send_all(stream, batch))

            nursery.start_soon(one)
    cpu = time.process_time()
    print(json.dumps({"started": started, "last_ack": max(last_acks), "cpu": cpu}), flush=True)


# -- the backend (this process) --------------------------------------------------------------


async def one_round(events: int, checks: int, agents: int) -> dict[str, float]:
    events -= events % agents
    Counting.seen, Counting.target, Counting.done = 0, events, trio.Event()
    with tempfile.TemporaryDirectory() as tmp:
        config_dir = Path(tmp) / "config"
        config_dir.mkdir()
        (config_dir / "handlers.yml").write_text(HANDLER)
        backend = Backend(
            BackendConfig(
                data_dir=Path(tmp) / "data",
                resources=load_directory(config_dir),
                api_addr=("127.0.0.1", 0),
                transport_addr=("127.0.0.1", 0),
            )
        )
        async with trio.open_nursery() as nursery:
            addresses = await nursery.start(backend.run)
            heap.settle()  # as `pipeline backend` does once started
            host, port = addresses.transport
            command = [sys.executable, "-m", "bench.transport", "--send", f"{host}:{port}",
                       "--events", str(events), "--checks", str(checks), "--agents", str(agents)]  # fmt: skip
            child = await trio.lowlevel.open_process(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            assert child.stdin is not None
            assert child.stdout is not None
            lines = _lines(child.stdout)
            assert await lines.__anext__() == "ready"
            cpu_before = time.process_time()
            await child.stdin.send_all(b"go\n")
            await Counting.done.wait()
            done = time.monotonic()
            cpu = time.process_time() - cpu_before
            sample = backend.metrics.registry.get_sample_value
            batches = sample("pipeline_store_batch_size_count") or 1.0
            result = json.loads(await lines.__anext__())
            await child.wait()
            nursery.cancel_scope.cancel()
    started = result["started"]
    return {
        "stored": events / (result["last_ack"] - started),
        "handled": events / (done - started),
        "cpu_us": cpu / events * 1e6,
        "sender_cpu_us": result["cpu"] / events * 1e6,
        "batch": (sample("pipeline_store_batch_size_sum") or 0.0) / batches,
    }


async def _lines(stream: Any) -> Any:
    buffer = b""
    while True:
        while b"\n" not in buffer:
            data = await stream.receive_some(65536)
            if not data:
                raise RuntimeError("the senders' process ended early")
            buffer += data
        line, buffer = buffer.split(b"\n", 1)
        yield line.decode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--checks", type=int, default=200, help="checks in all, shared among the agents")
    parser.add_argument("--agents", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="the backend's log level (stderr), as `pipeline backend --log-level`: info by default, as it runs",
    )
    parser.add_argument("--send", help=argparse.SUPPRESS)  # HOST:PORT: be the senders' process
    args = parser.parse_args()
    if args.send:
        host, port = args.send.rsplit(":", 1)
        trio.run(senders, host, int(port), args.agents, args.events, args.checks)
        return
    logs.configure(args.log_level)
    print(f"load: {os.getloadavg()[0]:.2f}")
    for _ in range(args.rounds):
        r = trio.run(one_round, args.events, args.checks, args.agents)
        print(f"{args.events} results, {args.checks} checks, {args.agents} agents in another process: "
              f"stored {r['stored']:,.0f}/s, handled {r['handled']:,.0f}/s, "
              f"backend CPU {r['cpu_us']:.0f} us/result (senders {r['sender_cpu_us']:.0f}), "
              f"{r['batch']:.0f} results per store transaction")  # fmt: skip
        record(Row("transport", "check results stored, agents in another process", r["stored"], "results/s",
                   goal=">= 5,000", met=r["stored"] >= 5000))  # fmt: skip
        record(Row("transport", "handed to an in-process handler", r["handled"], "results/s", goal=">= 5,000",
                   met=r["handled"] >= 5000))  # fmt: skip
        record(Row("transport", "backend CPU per result", r["cpu_us"], "µs"))
    print(f"load: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

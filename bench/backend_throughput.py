"""Check events per second through one backend: agent transport -> state -> store -> handler.

A synthetic agent speaks the real wire protocol over loopback TCP to a real backend (SQLite in
a temporary directory) and sends N check events from M checks, keeping a window of unacked
events as the agent does. Reported:

- stored/s: events acknowledged (state computed, stored in SQLite, durable) per second;
- handled/s: events whose pipe handler process finished, per second;
- spawn/s: a plain loop spawning the same handler command through /bin/sh, the peer for the
  handler stage (the ratio handled/spawn shows what the pipeline adds to fork cost).

Usage: python -m bench.backend_throughput [--events N] [--checks M] [--handler-events K]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path

import trio

from pipeline.backend.server import Backend, BackendConfig
from pipeline.config import load_directory
from pipeline.model import Check, Entity, Event, ObjectMeta
from pipeline.process import run_command
from pipeline.wire.messages import Ack, Checks, Events, Hello
from pipeline.wire.stream import MessageStream

WINDOW = 1000
BATCH = 200
HANDLER_COMMAND = "cat > /dev/null"

CONFIG = f"""
type: Handler
api_version: core/v2
metadata: {{name: sink}}
spec:
  type: pipe
  command: {HANDLER_COMMAND}
  timeout: 10
"""


def make_events(count: int, checks: int, handlers: list[str]) -> list[dict[str, object]]:
    entity = Entity(entity_class="agent", metadata=ObjectMeta(name="bench-agent", namespace="default"))
    now = int(time.time())
    events = []
    for i in range(count):
        check = Check(
            metadata=ObjectMeta(name=f"check-{i % checks}", namespace="default"),
            command="true",
            interval=10,
            status=(i // checks) % 3,
            output="OK - bench | value=1;2;3",
            executed=now,
            issued=now,
            handlers=handlers,
        )
        event = Event(timestamp=now, entity=entity, check=check, id=str(uuid.uuid4()))
        events.append(event.to_dict())
    return events


async def send_all(address: tuple[str, int], events: list[dict[str, object]]) -> float:
    """Send every event with a window of unacked ones; return seconds until the last ack."""
    stream = MessageStream(await trio.open_tcp_stream(*address), "backend")
    entity = events[0]["entity"]
    assert isinstance(entity, dict)
    await stream.send(Hello("bench-agent", "default", (), entity))
    while not isinstance(await stream.receive(), Checks):
        pass
    window = trio.Semaphore(WINDOW)
    acked = 0
    started = time.perf_counter()
    async with trio.open_nursery() as nursery:

        async def sender() -> None:
            for start in range(0, len(events), BATCH):
                batch = events[start : start + BATCH]
                for _ in batch:
                    await window.acquire()
                await stream.send(Events(tuple(batch)))

        nursery.start_soon(sender)
        while acked < len(events):
            message = await stream.receive()
            assert isinstance(message, Ack)
            for _ in message.ids:
                window.release()
            acked += len(message.ids)
    elapsed = time.perf_counter() - started
    await stream.aclose()
    return elapsed


async def wait_handled(backend: Backend, count: int) -> None:
    # Handler completions are only visible as a counter; a benchmark may poll it.
    while (  # noqa: ASYNC110
        backend.metrics.registry.get_sample_value("pipeline_handler_duration_seconds_count", {"handler": "sink"}) or 0
    ) < count:
        await trio.sleep(0.01)


async def spawn_loop(count: int, concurrency: int) -> float:
    """The peer: spawn the handler command ``count`` times, ``concurrency`` at once."""
    remaining = iter(range(count))
    started = time.perf_counter()

    async def worker() -> None:
        for _ in remaining:
            await run_command(HANDLER_COMMAND, stdin=b"{}")

    async with trio.open_nursery() as nursery:
        for _ in range(concurrency):
            nursery.start_soon(worker)
    return time.perf_counter() - started


async def main(events: int, checks: int, handler_events: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config_dir = Path(tmp) / "config"
        config_dir.mkdir()
        (config_dir / "handlers.yml").write_text(CONFIG)
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

            stored_s = await send_all(addresses.transport, make_events(events, checks, []))
            print(
                f"stored:  {events} events from {checks} checks in {stored_s:.2f} s = {events / stored_s:,.0f} events/s"
            )

            started = time.perf_counter()
            await send_all(addresses.transport, make_events(handler_events, checks, ["sink"]))
            await wait_handled(backend, handler_events)
            handled_s = time.perf_counter() - started
            rate = handler_events / handled_s
            print(
                f"handled: {handler_events} events through a pipe handler in {handled_s:.2f} s = {rate:,.0f} events/s"
            )
            nursery.cancel_scope.cancel()

    spawn_s = await spawn_loop(handler_events, 16)
    rate = handler_events / spawn_s
    print(f"spawn:   plain loop, {handler_events} spawns of {HANDLER_COMMAND!r}, 16 at once: {rate:,.0f} /s")
    print(f"ratio handled/spawn: {spawn_s / handled_s:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--checks", type=int, default=100)
    parser.add_argument("--handler-events", type=int, default=2000)
    args = parser.parse_args()
    trio.run(main, args.events, args.checks, args.handler_events)

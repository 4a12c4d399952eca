"""Handler throughput of the backend pipeline: pipe handlers against a plain spawn loop, and
in-process plugin handlers.

Pipe: N check events go through the real pipeline runner (legacy workflow, ``json`` mutator,
a pipe handler running ``cat > /dev/null`` with the event JSON on stdin, at most 16 processes
at once). The peer, in the same run, is a plain Python loop: a pool of 16 threads calling
``subprocess.run(["/bin/sh", "-c", "cat > /dev/null"], input=event_json)`` N times.
In-process: M events through the same runner to a plugin handler that only counts them.
Workflows: K events, each through three workflows of three filters (``is_incident``,
``not_silenced`` and an EventFilter expression) and the ``json`` mutator to a UDP handler
(a bound socket on loopback that reads nothing): the runner's cost of filters, mutators and
encoding, without a fork.

Usage: python -m bench.handlers [--events N] [--plugin-events M] [--workflow-events K]
"""

from __future__ import annotations

import argparse
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import trio

from bench.sink import Counting
from pipeline.backend.handlers import MAX_PROCESSES, HandlerRunner
from pipeline.config import Resources
from pipeline.metrics import BackendMetrics
from pipeline.model import Check, CheckHistory, Entity, Event, ObjectMeta, new_event_id
from pipeline.model.outbox import HandlerJob
from pipeline.model.pipeline import EventFilter
from pipeline.model.resources import Handler, HandlerSocket

COMMAND = "cat > /dev/null"


def make_event(*handlers: str) -> Event:
    return Event(
        timestamp=1_800_000_000,
        entity=Entity(entity_class="agent", metadata=ObjectMeta(name="web1", namespace="default"),
                      subscriptions=["linux", "entity:web1"]),
        check=Check(metadata=ObjectMeta(name="disk", namespace="default"), status=2, interval=60,
                    output="DISK CRITICAL - / 97% used | used=97%;80;90", handlers=list(handlers),
                    history=[CheckHistory(2, 1_800_000_000 - 60 * i) for i in range(21)], occurrences=21),
        metadata=ObjectMeta(namespace="default"),
        id=new_event_id(),
    )  # fmt: skip


def plain_loop(count: int, payload: bytes) -> float:
    """Seconds for a plain thread pool to spawn the command ``count`` times, 16 at once."""
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=MAX_PROCESSES) as pool:
        list(pool.map(lambda _: subprocess.run(["/bin/sh", "-c", COMMAND], input=payload, check=True), range(count)))
    return time.perf_counter() - started


async def through_runner(handler: Handler, count: int, wait: Any) -> float:
    return await through(Resources(handlers=[handler]), count, wait)


async def through(resources: Resources, count: int, wait: Any) -> float:
    runner = HandlerRunner(lambda: resources, BackendMetrics.create(), {"PATH": "/usr/bin:/bin"})
    names = [h.metadata.name for h in resources.handlers]
    events = [make_event(*names) for _ in range(count)]
    async with trio.open_nursery() as nursery:
        await nursery.start(runner.run)
        started = time.perf_counter()
        for event in events:
            await runner.inbox.send(HandlerJob(0, event))
        await wait(runner, count)
        elapsed = time.perf_counter() - started
        nursery.cancel_scope.cancel()
    return elapsed


async def pipe_done(runner: HandlerRunner, count: int) -> None:
    # Handler completions are visible as a counter; a benchmark may poll it.
    sample = runner.metrics.registry.get_sample_value
    while (sample("pipeline_handler_duration_seconds_count", {"handler": "sink"}) or 0) < count:  # noqa: ASYNC110
        await trio.sleep(0.005)


async def plugin_done(runner: HandlerRunner, count: int) -> None:
    await Counting.done.wait()


async def plugin_rate(count: int) -> float:
    Counting.target, Counting.seen, Counting.done = count, 0, trio.Event()
    handler = Handler(metadata=ObjectMeta(name="count", namespace="default"), type="plugin",
                      plugin="bench.sink:Counting")  # fmt: skip
    return count / await through_runner(handler, count, plugin_done)


async def drained(runner: HandlerRunner, count: int) -> None:
    await runner.drain()


async def workflow_rate(count: int) -> float:
    """Events per second through three workflows of three filters each to UDP handlers."""
    production = EventFilter(metadata=ObjectMeta(name="production", namespace="default"), action="allow",
                             expressions=["event.entity.metadata.name == 'web1'"])  # fmt: skip
    with trio.socket.socket(type=trio.socket.SOCK_DGRAM) as sink:
        await sink.bind(("127.0.0.1", 0))
        port = sink.getsockname()[1]
        socket = HandlerSocket(host="127.0.0.1", port=port)
        filters = ["is_incident", "not_silenced", "production"]
        handlers = [
            Handler(
                ObjectMeta(name=f"udp{i}", namespace="default"), "udp", socket=socket, filters=filters, max_attempts=1
            )
            for i in range(3)
        ]
        return count / await through(Resources(handlers=handlers, filters=[production]), count, drained)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--plugin-events", type=int, default=50_000)
    parser.add_argument("--workflow-events", type=int, default=10_000)
    args = parser.parse_args()
    payload = make_event("sink").to_json()
    sink = Handler(metadata=ObjectMeta(name="sink", namespace="default"), type="pipe", command=COMMAND, max_attempts=1)
    pipe_s = trio.run(through_runner, sink, args.events, pipe_done)
    plain_s = plain_loop(args.events, payload)
    print(f"pipe handler: {args.events / pipe_s:,.0f} events/s ({args.events:,} events, {MAX_PROCESSES} at once)")
    print(f"plain loop:   {args.events / plain_s:,.0f} spawns/s (16 threads, subprocess.run, same stdin)")
    print(f"ratio pipeline/plain: {plain_s / pipe_s:.2f}")
    print(
        f"in-process plugin: {trio.run(plugin_rate, args.plugin_events):,.0f} events/s ({args.plugin_events:,} events)"
    )
    rate = trio.run(workflow_rate, args.workflow_events)
    print(f"3 workflows x 3 filters -> udp: {rate:,.0f} events/s ({args.workflow_events:,} events)")


if __name__ == "__main__":
    main()

"""Handler throughput of the backend pipeline: pipe handlers against a plain spawn loop, and
in-process plugin handlers.

Pipe: N check events go through the real pipeline runner (legacy workflow, ``json`` mutator,
a pipe handler running ``cat > /dev/null`` with the event JSON on stdin, at most 16 processes
at once). The peer, in the same run, is a plain Python loop: a pool of 16 threads calling
``subprocess.run(["/bin/sh", "-c", "cat > /dev/null"], input=event_json)`` N times.
In-process: M events through the same runner to a plugin handler that only counts them.

Usage: python -m bench.handlers [--events N] [--plugin-events M]
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
from pipeline.model.resources import Handler

COMMAND = "cat > /dev/null"


def make_event(handler: str) -> Event:
    return Event(
        timestamp=1_800_000_000,
        entity=Entity(entity_class="agent", metadata=ObjectMeta(name="web1", namespace="default"),
                      subscriptions=["linux", "entity:web1"]),
        check=Check(metadata=ObjectMeta(name="disk", namespace="default"), status=2, interval=60,
                    output="DISK CRITICAL - / 97% used | used=97%;80;90", handlers=[handler],
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
    resources = Resources(handlers=[handler])
    runner = HandlerRunner(lambda: resources, BackendMetrics.create(), {"PATH": "/usr/bin:/bin"})
    events = [make_event(handler.metadata.name) for _ in range(count)]
    async with trio.open_nursery() as nursery:
        await nursery.start(runner.run)
        started = time.perf_counter()
        for event in events:
            await runner.inbox.send(event)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--plugin-events", type=int, default=50_000)
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


if __name__ == "__main__":
    main()

"""The agent's on-disk spool: how fast a full spool drains, and what it costs on the steady path.

Drain: the agent starts with no backend and spools N events; then a backend (the acking sink
of ``bench/sink.py``) appears, and the time until the last event is acknowledged gives the
drain rate (timed from the reconnect). Steady path: with the sink connected, N events are
submitted back to back and the time until the last is acknowledged gives events/s, once with
the spool on disk (what agents run) and once with the spool in memory (its log kept in memory:
the same code without the files), in the same run. The sink runs in this process: what a frame
costs it is counted too, so fewer, larger spool writes and frames read faster here.

Usage: python -m bench.spool [--events N]
"""

from __future__ import annotations

import argparse
import functools
import tempfile
import time
from pathlib import Path

import trio

from bench.sink import AckingSink
from bench.table import Row, record
from pipeline.agent.agent import Agent
from pipeline.agent.settings import AgentConfig
from pipeline.model import Check, Event, ObjectMeta, new_event_id


def make_events(agent: Agent, count: int) -> list[Event]:
    now = int(time.time())
    return [
        Event(timestamp=now, entity=agent.entity, metadata=ObjectMeta(namespace="default"), id=new_event_id(),
              check=Check(metadata=ObjectMeta(name=f"check-{i % 100}", namespace="default"), status=i % 3,
                          output=f"CHECK OK - result {i} | value={i}", interval=10, executed=now))
        for i in range(count)
    ]  # fmt: skip


def new_agent(port: int, data_dir: Path | None) -> Agent:
    # Keepalives and heartbeats stay out of the way of the measured events.
    return Agent(AgentConfig(name="bench", backend_addrs=[("127.0.0.1", port)], api_addr=None, data_dir=data_dir,
                             keepalive_interval=3600, keepalive_warning_timeout=0, keepalive_critical_timeout=0))  # fmt: skip


async def drain_rate(count: int, data_dir: Path) -> tuple[float, float]:
    """(spool fill rate with no backend, drain rate once the backend appears), events/s."""
    sink = AckingSink()
    with trio.socket.socket() as probe:
        await probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with trio.open_nursery() as nursery:
        agent = new_agent(port, data_dir)
        await nursery.start(agent.run)
        events = make_events(agent, count)
        spooled = agent.delivery.spooled_event(events[-1].id)
        acked = agent.delivery.acknowledged_event(events[-1].id)
        started = time.perf_counter()
        for event in events:
            await agent.submit(event)
        await spooled.wait()
        filled = time.perf_counter() - started
        assert agent.spool.count >= count
        await nursery.start(functools.partial(trio.serve_tcp, sink.serve, port, host="127.0.0.1"))
        await agent.connected.wait()  # after the agent's reconnect backoff, which is not the spool's cost
        started = time.perf_counter()
        await acked.wait()
        drained = time.perf_counter() - started
        nursery.cancel_scope.cancel()
    return count / filled, count / drained


async def steady_rate(count: int, data_dir: Path | None) -> float:
    sink = AckingSink()
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(functools.partial(trio.serve_tcp, sink.serve, 0, host="127.0.0.1"))
        agent = new_agent(listeners[0].socket.getsockname()[1], data_dir)
        await nursery.start(agent.run)
        await agent.connected.wait()
        events = make_events(agent, count)
        acked = agent.delivery.acknowledged_event(events[-1].id)
        started = time.perf_counter()
        for event in events:
            await agent.submit(event)
        await acked.wait()
        elapsed = time.perf_counter() - started
        nursery.cancel_scope.cancel()
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=50_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fill, drain = trio.run(drain_rate, args.events, Path(tmp) / "drain")
        print(f"spool fill (no backend): {fill:,.0f} events/s")
        print(f"spool drain (backend back): {drain:,.0f} events/s acknowledged ({args.events:,} events)")
        on_disk = trio.run(steady_rate, args.events, Path(tmp) / "steady")
    in_memory = trio.run(steady_rate, args.events, None)
    print(f"steady path, spool on disk:   {on_disk:,.0f} events/s")
    print(f"steady path, spool in memory: {in_memory:,.0f} events/s")
    print(f"ratio disk/memory: {on_disk / in_memory:.2f}")
    record(Row("spool", "steady path, spool on disk", on_disk, "events/s", "spool in memory", in_memory))
    record(Row("spool", "drain after an outage", drain, "events/s"))


if __name__ == "__main__":
    main()

"""Subprocess checks per second one agent runs and sends, against a plain spawn loop.

The agent is the real one (scheduler, executor, transport client); the backend is a minimal
sink on loopback that speaks the wire protocol, hands the agent N checks running
``/bin/true`` every second and acknowledges every event, so that only the agent's cost is
measured. The peer, in the same run, is a plain Python loop calling
``subprocess.run(["/bin/sh", "-c", "/bin/true"])`` back to back.

Usage: python -m bench.agent_checks [--checks N] [--seconds S]
"""

from __future__ import annotations

import argparse
import functools
import os
import subprocess
import time

import trio

from bench.sink import AckingSink
from bench.table import Row, record
from pipeline import heap
from pipeline.agent.agent import Agent
from pipeline.agent.settings import AgentConfig
from pipeline.model import CheckConfig, ObjectMeta
from pipeline.model.codec import encode


def own_cpu() -> float:
    """CPU seconds of this process (all its threads), not of its children."""
    times = os.times()
    return times.user + times.system


def plain_loop(seconds: float) -> tuple[float, float]:
    """Spawns per second of a plain loop, and this process's CPU seconds per spawn."""
    count = 0
    cpu = own_cpu()
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        subprocess.run(["/bin/sh", "-c", "/bin/true"], check=True)
        count += 1
    return count / seconds, (own_cpu() - cpu) / max(count, 1)


async def agent_rate(checks: int, seconds: float) -> tuple[float, float]:
    """Checks run and sent per second, and this process's CPU seconds per check (the agent's
    and the sink's: the sink's share is small, decoding and acknowledging frames)."""
    sink = AckingSink([
        encode(CheckConfig(metadata=ObjectMeta(name=f"true-{i}"), command="/bin/true", interval=1, publish=True,
                           subscriptions=["bench"]))
        for i in range(checks)
    ])  # fmt: skip
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(functools.partial(trio.serve_tcp, sink.serve, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        agent = Agent(
            AgentConfig(name="bench", backend_addrs=[("127.0.0.1", port)], subscriptions=["bench"], api_addr=None)
        )
        await nursery.start(agent.run)
        heap.settle()  # as `pipeline agent` does once started
        await trio.sleep(2)  # let every check's splayed first run pass
        start_count, started, cpu = sink.received, time.perf_counter(), own_cpu()
        await trio.sleep(seconds)
        received, cpu = sink.received - start_count, own_cpu() - cpu
        rate = received / (time.perf_counter() - started)
        nursery.cancel_scope.cancel()
    return rate, cpu / max(received, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checks", type=int, default=800, help="checks at interval 1 (the demand, per second)")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    plain, plain_cpu = plain_loop(args.seconds)
    print(f"plain loop: {plain:,.0f} spawns/s of /bin/sh -c /bin/true ({plain_cpu * 1e6:,.0f} us CPU each)")
    rate, cpu = trio.run(agent_rate, args.checks, args.seconds)
    print(f"agent:      {rate:,.0f} checks/s run and sent ({args.checks} checks at interval 1; "
          f"{cpu * 1e6:,.0f} us CPU each)")  # fmt: skip
    print(f"ratio agent/plain: {rate / plain:.2f} (load {os.getloadavg()[0]:.1f})")
    record(Row("agent_checks", "subprocess checks run and sent", rate, "checks/s", "plain spawn loop", plain,
               ">= 0.8x", rate / plain >= 0.8))  # fmt: skip


if __name__ == "__main__":
    main()

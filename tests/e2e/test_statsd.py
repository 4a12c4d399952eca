"""StatsD over real UDP to a real agent, flushed through a real backend to a pipe handler."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
import trio

from pipeline.agent.agent import Agent
from pipeline.agent.settings import AgentConfig
from pipeline.agent.statsd import StatsdConfig
from tests.support import EventPipe, capture_handler, loopback_backend, write_config

pytestmark = pytest.mark.e2e


def points_of(event: dict[str, Any]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (p["name"], tuple((t["name"], t["value"]) for t in p["tags"])): p["value"] for p in event["metrics"]["points"]
    }


async def test_datagrams_become_one_metrics_event_per_flush_and_service_checks_become_checks(tmp_path: Path) -> None:
    pipe = EventPipe(tmp_path / "events.fifo")
    backend = loopback_backend(tmp_path, write_config(tmp_path / "config", capture_handler(pipe.path)))
    statsd = StatsdConfig(addr=("127.0.0.1", 0), flush_interval=0.5, event_handlers=["capture"])
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            addresses = await nursery.start(backend.run)
            agent = Agent(AgentConfig(name="web1", backend_addrs=[addresses.transport], api_addr=None, statsd=statsd))
            agent_addresses = await nursery.start(agent.run)
            assert agent_addresses.statsd is not None
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
                client.sendto(
                    b"gorets:1|c|@0.1\nglork:320|ms\ngaugor:333|g\nuniques:765|s\nbad:line\n"
                    b"requests:2|c|#env:prod,region:eu",
                    agent_addresses.statsd,
                )
                client.sendto(b"_sc|db.up|2|#env:prod|m:connection refused", agent_addresses.statsd)
            # Idle keys are flushed again (zeros, the gauge re-sent), as etsy does: take the first flush.
            check = metrics = None
            while check is None or metrics is None:
                event = await pipe.next_event()
                if "check" in event:
                    check = event
                elif metrics is None:
                    metrics = event
            nursery.cancel_scope.cancel()
    await pipe.aclose()
    assert "check" not in metrics
    assert metrics["entity"]["metadata"]["name"] == "web1"
    points = points_of(metrics)
    assert points[("stats.counters.gorets.count", ())] == 10
    assert points[("stats.counters.gorets.rate", ())] == 20  # 10 over a 0.5 s flush
    assert points[("stats.timers.glork.upper_90", ())] == 320
    assert points[("stats.gauges.gaugor", ())] == 333
    assert points[("stats.sets.uniques.count", ())] == 1
    assert points[("stats.counters.requests.count", (("env", "prod"), ("region", "eu")))] == 2
    assert len({p["timestamp"] for p in metrics["metrics"]["points"]}) == 1
    assert check["check"]["metadata"]["name"] == "db.up"
    assert (check["check"]["status"], check["check"]["output"]) == (2, "connection refused")
    assert check["check"]["metadata"]["labels"] == {"env": "prod"}
    registry = agent.metrics.registry
    assert registry.get_sample_value("pipeline_statsd_bad_lines_total") == 1
    assert registry.get_sample_value("pipeline_statsd_packets_total") == 2

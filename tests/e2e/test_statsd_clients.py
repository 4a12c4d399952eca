"""Real client libraries (pystatsd, datadog's DogStatsd) against the agent's StatsD listener."""

from __future__ import annotations

from typing import Any

import pytest
import statsd
import trio
import trio.testing
from datadog.dogstatsd.base import DogStatsd
from prometheus_client import CollectorRegistry

from pipeline.agent.statsd import StatsdConfig, StatsdServer
from pipeline.model import Entity, Event, ObjectMeta

pytestmark = pytest.mark.e2e


class CountingServer(StatsdServer):
    """The real listener, telling the test each time a datagram has been handled."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.handled = 0
        self.changed = trio.Event()

    def handle_datagram(self, data: bytes, sender: tuple[str, int] | str = "") -> None:
        super().handle_datagram(data, sender)
        self.handled += 1
        self.changed.set()
        self.changed = trio.Event()

    async def wait_for(self, datagrams: int) -> None:
        while self.handled < datagrams:
            await self.changed.wait()


async def run_clients(
    send: Any, datagrams: int
) -> tuple[dict[tuple[str, tuple[tuple[str, str], ...]], float], list[Event]]:
    sent: list[Event] = []

    async def submit(event: Event) -> None:
        sent.append(event)

    entity = Entity(entity_class="agent", metadata=ObjectMeta(name="web1", namespace="default"))
    server = CountingServer(
        StatsdConfig(addr=("127.0.0.1", 0), flush_interval=3600), entity, submit, CollectorRegistry()
    )
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            host, port = await nursery.start(server.run)
            await trio.to_thread.run_sync(send, host, port)
            await server.wait_for(datagrams)
            await server.flush()
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
    metrics = [e for e in sent if e.metrics is not None]
    points = {(p.name, tuple((t.name, t.value) for t in p.tags)): p.value for e in metrics for p in e.metrics.points}  # type: ignore[union-attr]
    return points, [e for e in sent if e.check is not None]


async def test_pystatsd_client() -> None:
    def send(host: str, port: int) -> None:
        client = statsd.StatsClient(host, port, prefix="app")
        client.incr("logins")
        client.incr("logins", 4)
        client.decr("queue", 2)
        client.timing("render", 120)
        client.timing("render", 80)
        client.gauge("pool", 10)
        client.gauge("pool", 5, delta=True)
        client.set("visitors", "alice")
        client.set("visitors", "bob")
        client.set("visitors", "alice")
        client.close()

    points, checks = await run_clients(send, datagrams=10)
    assert checks == []
    assert points[("stats.counters.app.logins.count", ())] == 5
    assert points[("stats.counters.app.queue.count", ())] == -2
    assert points[("stats.timers.app.render.mean", ())] == 100
    assert points[("stats.timers.app.render.count", ())] == 2
    assert points[("stats.gauges.app.pool", ())] == 15
    assert points[("stats.sets.app.visitors.count", ())] == 2


async def test_datadog_dogstatsd_client() -> None:
    def send(host: str, port: int) -> None:
        client = DogStatsd(host=host, port=port, disable_telemetry=True, disable_buffering=True)
        client.increment("page.views", tags=["env:prod", "canary"])
        client.increment("page.views", tags=["env:prod", "canary"])
        client.histogram("query.time", 10, tags=["db:main"])
        client.distribution("upload.size", 300)
        client.gauge("workers", 8)
        client.service_check("db.up", DogStatsd.CRITICAL, tags=["db:main"], message="connection refused")
        client.event("Deploy finished", "v1.2 is live", alert_type="success", tags=["app:web"])
        client.close_socket()

    points, checks = await run_clients(send, datagrams=7)
    assert points[("stats.counters.page.views.count", (("env", "prod"), ("canary", "")))] == 2
    assert points[("stats.timers.query.time.upper", (("db", "main"),))] == 10
    assert points[("stats.timers.upload.size.upper", ())] == 300
    assert points[("stats.gauges.workers", ())] == 8
    by_name = {e.check_name: e.check for e in checks}
    assert by_name["db.up"] is not None
    assert (by_name["db.up"].status, by_name["db.up"].output) == (2, "connection refused")
    deploy = by_name["Deploy_finished"]
    assert deploy is not None
    assert (deploy.status, deploy.output) == (0, "v1.2 is live")


async def test_the_listener_takes_ipv6() -> None:
    sent: list[Event] = []

    async def submit(event: Event) -> None:
        sent.append(event)

    entity = Entity(entity_class="agent", metadata=ObjectMeta(name="web1", namespace="default"))
    server = CountingServer(StatsdConfig(addr=("::1", 0), flush_interval=3600), entity, submit, CollectorRegistry())
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            host, port = await nursery.start(server.run)
            assert host == "::1"

            def send() -> None:
                client = statsd.StatsClient(host, port, ipv6=True)
                client.incr("over.v6", 3)
                client.close()

            await trio.to_thread.run_sync(send)
            await server.wait_for(1)
            await server.flush()
            nursery.cancel_scope.cancel()
    (event,) = sent
    assert event.metrics is not None
    assert {p.name: p.value for p in event.metrics.points}["stats.counters.over.v6.count"] == 3

"""The agent's local HTTP API answers as Sensu Go's agent does."""

from __future__ import annotations

import httpx
from prometheus_client import CollectorRegistry, Counter

from pipeline.agent.api import create_agent_app
from pipeline.agent.spool import SetAside


async def test_healthz_follows_the_backend_connection_and_metrics_are_exported() -> None:
    registry = CollectorRegistry()
    Counter("pipeline_agent_example", "An example", registry=registry).inc()
    connected = False
    app = create_agent_app(registry, lambda: connected)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://agent") as client:
        down = await client.get("/healthz")
        assert (down.status_code, down.text) == (503, "sensu backend unavailable")
        connected = True
        up = await client.get("/healthz")
        assert (up.status_code, up.text) == (200, "ok")
        metrics = await client.get("/metrics")
        assert "pipeline_agent_example_total 1.0" in metrics.text


async def test_the_set_aside_list_takes_a_bounded_limit() -> None:
    asked: list[int] = []

    async def set_aside(limit: int) -> list[SetAside]:
        asked.append(limit)
        return [SetAside("id1", 1.5, "too_large", "event of 2 bytes exceeds ...", "web1", "disk", 2)]

    app = create_agent_app(CollectorRegistry(), lambda: True, set_aside=set_aside)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://agent") as client:
        listed = await client.get("/events/set-aside")
        assert listed.json() == [{"id": "id1", "at": 1.5, "reason": "too_large", "error": "event of 2 bytes exceeds ...",
                                  "entity": "web1", "check": "disk", "size": 2}]  # fmt: skip
        assert (await client.get("/events/set-aside?limit=5")).status_code == 200
        for bad in ("0", "1001", "x", "9" * 5000, "٣"):
            refused = await client.get("/events/set-aside", params={"limit": bad})
            assert refused.status_code == 400
            assert refused.json()["message"].startswith("limit: expected 1 to 1000")
    assert asked == [100, 5]

"""The agent's local HTTP API answers as Sensu Go's agent does."""

from __future__ import annotations

import httpx
from prometheus_client import CollectorRegistry, Counter

from pipeline.agent.api import create_agent_app


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

"""/ready through the app: 200 ``ready`` while serving, 503 before and while stopping."""

from __future__ import annotations

from pathlib import Path

import httpx

from pipeline.backend.api import create_app
from pipeline.backend.api.health import health_routes
from pipeline.metrics import BackendMetrics
from pipeline.store.service import StoreService
from pipeline.store.sqlite import SQLiteStore


async def test_ready_follows_the_backend_state(tmp_path: Path) -> None:
    metrics = BackendMetrics.create()
    state = {"ready": False}
    store = StoreService(SQLiteStore(tmp_path / "events.db"), metrics.store)
    app = create_app(health_routes(metrics, store, "backend1", lambda: state["ready"]))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://pipeline") as client:
        starting = await client.get("/ready")
        state["ready"] = True
        serving = await client.get("/ready")
        state["ready"] = False
        stopping = await client.get("/ready")
    assert (starting.status_code, starting.headers["retry-after"]) == (503, "1")
    assert starting.json() == {"code": 1, "message": "not ready: the backend is starting or stopping"}
    assert (serving.status_code, serving.text) == (200, "ready\n")
    assert stopping.status_code == 503

"""When the pipeline is full the API says so (503, Retry-After) and takes nothing, not half."""

from __future__ import annotations

from pathlib import Path

import httpx
import trio

from pipeline.backend.api import create_app
from pipeline.backend.api.events import event_routes
from pipeline.backend.eventd import INBOX_SIZE, EventProcessor
from pipeline.backend.push_api import push_routes
from pipeline.backend.throttle import AuthGuard
from pipeline.metrics import BackendMetrics
from pipeline.model import Check, Entity, Event, ObjectMeta
from pipeline.model.outbox import HandlerJob
from pipeline.store.service import StoreService
from pipeline.store.sqlite import SQLiteStore

EVENT = {"entity": {"metadata": {"name": "web1"}}, "check": {"metadata": {"name": "disk"}, "status": 0, "output": "ok"}}


def event(i: int) -> Event:
    return Event(entity=Entity(metadata=ObjectMeta(name="web1", namespace="default")),
                 check=Check(metadata=ObjectMeta(name=f"c{i}", namespace="default")), id=f"id-{i}")  # fmt: skip


def test_offer_takes_all_or_nothing(tmp_path: Path) -> None:
    to_handlers, _ = trio.open_memory_channel[HandlerJob](1)
    metrics = BackendMetrics.create()
    eventd = EventProcessor(StoreService(SQLiteStore(tmp_path / "events.db"), metrics.store), metrics, to_handlers)
    assert eventd.offer([event(i) for i in range(INBOX_SIZE - 2)])
    assert not eventd.offer([event(i) for i in range(3)])  # only 2 places left: none taken
    assert eventd.inbox.statistics().current_buffer_used == INBOX_SIZE - 2
    assert eventd.offer([event(i) for i in range(2)])


async def test_a_full_pipeline_is_503_with_retry_after(tmp_path: Path) -> None:
    metrics = BackendMetrics.create()

    def full(events: object, reply: object, *, replays: object = None) -> bool:
        return False

    push = push_routes(full, metrics, lambda key: key == "k", AuthGuard(metrics), change_handlers=[])

    async def no_event(namespace: str, entity: str, check: str) -> bool:
        return False

    store = StoreService(SQLiteStore(tmp_path / "events.db"), metrics.store)
    app = create_app(event_routes(store, full, metrics, no_event), push)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://backend") as client:
        api = await client.post("/api/core/v2/namespaces/default/events", json=EVENT)
        sematext = await client.post("/k/event", content=b'{"message": "deploy", "type": "deployment"}')
    for response in (api, sematext):
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "1"
    assert metrics.registry.get_sample_value("pipeline_api_busy_total", {"source": "api"}) == 1
    assert metrics.registry.get_sample_value("pipeline_api_busy_total", {"source": "sematext"}) == 1

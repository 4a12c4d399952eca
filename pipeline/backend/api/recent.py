"""pipeline's own view of recent work, for the CLI and the dashboard alike:

- ``GET /api/pipeline/v1/events/{id}/trace``: what the pipeline did with one event (each
  workflow's filters' verdicts, its mutator, each handler attempt, the dead letter it left) while
  the trace is in the ring of the last ones, and the dead letters the store keeps of it;
- ``GET /api/pipeline/v1/entities/{namespace}/{name}/metrics``: the recent window of each
  metric series the entity sent, with its latest value.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pipeline.backend.recent_metrics import RecentMetrics
from pipeline.backend.traces import PipelineTraces
from pipeline.core.metric_windows import SeriesView
from pipeline.http_answers import error_response
from pipeline.model.codec import encode
from pipeline.model.deadletter import DeadLetter
from pipeline.store.service import StoreService

TRACE = "/api/pipeline/v1/events/{id}/trace"
ENTITY_METRICS = "/api/pipeline/v1/entities/{namespace}/{name}/metrics"


def letter_summary(letter: DeadLetter) -> dict[str, Any]:
    """A dead letter without its event (the caller has it)."""
    return {"id": letter.id, "created": letter.created, "handler": letter.handler, "workflow": letter.workflow,
            "pipeline": letter.pipeline, "error": letter.error, "attempts": letter.attempts}  # fmt: skip


async def dead_letters_of(store: StoreService, event_id: str) -> list[DeadLetter]:
    return [letter for letter in await store.list_dead_letters() if letter.event.id == event_id]


def _number(value: float) -> float | None:
    """JSON has no NaN nor infinity: null."""
    return value if math.isfinite(value) else None


def series_json(view: SeriesView) -> dict[str, Any]:
    at, value = view.latest
    return {"name": view.name, "tags": dict(view.tags), "source": view.source,
            "latest": {"timestamp": at, "value": _number(value)},
            "points": [[t, _number(v)] for t, v in view.points]}  # fmt: skip


def recent_routes(
    traces: PipelineTraces, metrics: RecentMetrics, store: StoreService, *, wall_clock: Callable[[], float] = time.time
) -> list[Route]:
    async def event_trace(request: Request) -> Response:
        event_id = request.path_params["id"]
        trace = traces.get(event_id)
        letters = await dead_letters_of(store, event_id)
        if trace is None and not letters:
            return error_response(404, f"no trace of event {event_id} (the last {traces.capacity} events that "
                                       "had a workflow are kept) and no dead letter of it")  # fmt: skip
        body = {"event_id": event_id, "trace": None if trace is None else encode(trace),
                "dead_letters": [letter_summary(letter) for letter in letters]}  # fmt: skip
        return JSONResponse(body)

    async def entity_metrics(request: Request) -> Response:
        p = request.path_params
        windows = metrics.windows
        views = metrics.series(p["namespace"], p["name"], wall_clock())
        body = {"namespace": p["namespace"], "entity": p["name"], "series": [series_json(v) for v in views],
                "window": {"points_per_series": windows.points, "seconds": windows.seconds,
                           "series_per_entity": windows.per_entity, "series_total": windows.total}}  # fmt: skip
        return JSONResponse(body)

    return [
        Route(TRACE, event_trace, methods=["GET"]),
        Route(ENTITY_METRICS, entity_metrics, methods=["GET"]),
    ]

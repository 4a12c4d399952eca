"""The timeline: check results and change events of a namespace in time order, paged."""

from __future__ import annotations

import time
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pipeline.backend.api.lists import CONTINUE_HEADER
from pipeline.core.numbers import parse_int
from pipeline.core.timespec import parse_time
from pipeline.http_answers import error_response
from pipeline.http_params import takes_query
from pipeline.store.base import TimelineQuery
from pipeline.store.service import StoreService

TIMELINE = "/api/core/v2/namespaces/{namespace}/timeline"
#: Timeline entries per page, by default and at most.
TIMELINE_PAGE, TIMELINE_PAGE_MAX = 100, 1000


def timeline_routes(store: StoreService, *, wall_clock: Callable[[], float] = time.time) -> list[Route]:
    @takes_query("since", "until", "entity", "type", "limit", "continue")
    async def timeline(request: Request) -> Response:
        params = request.query_params
        now = wall_clock()
        bounds: dict[str, int | None] = {}
        for name in ("since", "until"):
            try:
                bounds[name] = parse_time(params[name], now) if params.get(name) else None
            except ValueError as exc:
                return error_response(400, f"{name}: {exc}")
        raw_limit = params.get("limit", str(TIMELINE_PAGE))
        limit = parse_int(raw_limit, (1, TIMELINE_PAGE_MAX))
        if limit is None:
            return error_response(400, f"limit: between 1 and {TIMELINE_PAGE_MAX}, got {raw_limit[:40]!r}")
        try:
            after = TimelineQuery.cursor(params["continue"]) if params.get("continue") else None
        except ValueError as exc:
            return error_response(400, f"continue: {exc} (use the Sensu-Continue header of the previous page)")
        query = TimelineQuery(request.path_params["namespace"], bounds["since"], bounds["until"],
                              params.get("entity", ""), params.get("type", ""), limit, after)  # fmt: skip
        events, cursor = await store.timeline(query)
        headers = {CONTINUE_HEADER: cursor} if cursor else {}
        return JSONResponse([e.to_dict() for e in events], headers=headers)

    return [Route(TIMELINE, timeline, methods=["GET"])]

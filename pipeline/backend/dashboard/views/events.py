"""The event page, ``/events/{namespace}/{entity}/{check}``: the latest result (output as text,
never HTML), the 21-result history, occurrences, state and flapping, hooks' output, the check's
recent metric points, the silences that match it, what the pipeline did with it (from the
handler runner's traces and the store's dead letters) and what changed on the entity in the hour
before the incident started (the change events of the timeline)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from pipeline.backend.api.recent import dead_letters_of
from pipeline.backend.dashboard import shapes
from pipeline.backend.dashboard.context import DashboardContext
from pipeline.backend.dashboard.pages import page, render
from pipeline.backend.dashboard.sessions import Viewer
from pipeline.core.push.common import is_change
from pipeline.core.silencing import silencing_names
from pipeline.core.workflows import names_handlers
from pipeline.http_params import takes_query
from pipeline.model import Event
from pipeline.store.base import TimelineQuery

EVENT = "/events/{namespace}/{entity}/{check}"
#: How far before an incident started its changes are looked for.
CHANGES_BEFORE = 3600
#: Change events shown, at most (the latest ones before the incident).
CHANGES_SHOWN = 50
#: Timeline entries read looking for them, at most (pages of TIMELINE_PAGE): an entity with many
#: check results in the hour does not make the page read the whole log.
TIMELINE_PAGE, TIMELINE_PAGES = 500, 10


def event_path(namespace: str, entity: str, check: str) -> str:
    return f"/events/{namespace}/{entity}/{check}"


async def changes_before(ctx: DashboardContext, namespace: str, entity: str, until: int) -> list[Event]:
    """The change events of ``entity`` in the :data:`CHANGES_BEFORE` seconds up to ``until``,
    oldest first (the last :data:`CHANGES_SHOWN`)."""
    found: list[Event] = []
    after = None
    for _ in range(TIMELINE_PAGES):
        query = TimelineQuery(namespace, until - CHANGES_BEFORE, until, entity, "", TIMELINE_PAGE, after)
        events, cursor = await ctx.store.timeline(query)
        found.extend(e for e in events if is_change(e))
        if not cursor:
            break
        after = TimelineQuery.cursor(cursor)
    return found[-CHANGES_SHOWN:]


def routes(ctx: DashboardContext) -> list[BaseRoute]:
    guard = page(ctx.sessions, ctx.wall_clock)

    @takes_query()
    @guard
    async def event_page(request: Request, viewer: Viewer) -> Response:
        p = request.path_params
        event = await ctx.store.get_event(p["namespace"], p["entity"], p["check"])
        if event is None or event.check is None:
            return render(request, "event_missing.html", viewer, 404, namespace=p["namespace"], entity=p["entity"],
                          check=p["check"])  # fmt: skip
        return render(request, "event.html", viewer, **await _values(ctx, event))

    return [Route(EVENT, event_page, methods=["GET"])]


async def _values(ctx: DashboardContext, event: Event) -> dict[str, Any]:
    assert event.check is not None
    now = ctx.wall_clock()
    namespace = event.namespace or "default"
    check = event.check
    started = shapes.incident_start(check, event.timestamp)
    silences = ctx.silences.list(namespace)
    matching = set(silencing_names(event, silences, now))
    series = []
    if ctx.recent_metrics is not None:
        series = [
            s for s in ctx.recent_metrics.series(namespace, event.entity_name, now) if s.source == check.metadata.name
        ]
    return {
        "event": event,
        "check": check,
        "namespace": namespace,
        "now": now,
        "shapes": shapes,
        "incident_started": started,
        "silences": [s for s in silences if s.metadata.name in matching],
        "series": series,
        "trace": ctx.traces.get(event.id) if ctx.traces is not None else None,
        "traces_kept": ctx.traces.capacity if ctx.traces is not None else 0,
        "names_handlers": names_handlers(event),
        "dead_letters": await dead_letters_of(ctx.store, event.id),
        "changes": await changes_before(ctx, namespace, event.entity_name, started),
        "changes_since": started - CHANGES_BEFORE,
        "event_path": event_path,
    }

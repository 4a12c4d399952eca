"""The entities pages: ``/entities`` (agents and proxies, keepalive state, last seen,
subscriptions; filtered by class and namespace, paged) and ``/entities/{namespace}/{name}`` (its
system facts, subscriptions, latest events linking to their pages, and the latest value of each
metric series it sent with a sparkline of its recent window)."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from pipeline.backend.dashboard import shapes
from pipeline.backend.dashboard.context import DashboardContext
from pipeline.backend.dashboard.pages import page, render
from pipeline.backend.dashboard.sessions import Viewer
from pipeline.backend.dashboard.views.events import event_path
from pipeline.core.keepalive import KEEPALIVE
from pipeline.core.numbers import parse_int
from pipeline.http_params import takes_query
from pipeline.model import DEFAULT_NAMESPACE, Entity
from pipeline.model.entity import ENTITY_CLASSES, entity_subscription

ENTITIES = "/entities"
ENTITY = "/entities/{namespace}/{name}"
#: Entities per page of the list.
PAGE_SIZE = 50
MAX_PAGE = 1_000_000


@dataclass(slots=True, frozen=True)
class EntityRow:
    entity: Entity
    namespace: str
    #: the keepalive's status, None when the entity sends none (a proxy)
    keepalive: int | None
    last_seen: float | None
    subscriptions: list[str]


def own_subscriptions(entity: Entity) -> list[str]:
    """The entity's subscriptions but the one every entity has to itself."""
    return [s for s in entity.subscriptions if s != entity_subscription(entity.name)]


def routes(ctx: DashboardContext) -> list[BaseRoute]:
    guard = page(ctx.sessions, ctx.wall_clock)

    def row(entity: Entity) -> EntityRow:
        namespace = entity.metadata.namespace or DEFAULT_NAMESPACE
        keepalive = ctx.latest_checks().get((namespace, entity.name, KEEPALIVE))
        return EntityRow(entity, namespace, None if keepalive is None else keepalive.status,
                         ctx.last_seen(namespace, entity.name), own_subscriptions(entity))  # fmt: skip

    @takes_query("namespace", "class", "page")
    @guard
    async def entity_list(request: Request, viewer: Viewer) -> Response:
        params = request.query_params
        namespace, wanted = params.get("namespace", ""), params.get("class", "")
        number = parse_int(params.get("page", "1"), (1, MAX_PAGE))
        if number is None:
            return PlainTextResponse(f"page: a whole number from 1 to {MAX_PAGE}, got {params['page'][:40]!r}", 400)
        found = await ctx.store.list_entities(namespace or None)
        found = [e for e in found if not wanted or e.entity_class == wanted]
        found.sort(key=lambda e: (e.metadata.namespace, e.name))
        pages = max(1, -(-len(found) // PAGE_SIZE))
        number = min(number, pages)
        shown = found[(number - 1) * PAGE_SIZE : number * PAGE_SIZE]
        return render(request, "entities.html", viewer, rows=[row(e) for e in shown], total=len(found),
                      page_number=number, pages=pages, namespace=namespace, wanted=wanted, classes=ENTITY_CLASSES,
                      shapes=shapes, now=ctx.wall_clock())  # fmt: skip

    @takes_query()
    @guard
    async def entity_page(request: Request, viewer: Viewer) -> Response:
        namespace, name = request.path_params["namespace"], request.path_params["name"]
        entity = await ctx.store.get_entity(namespace, name)
        events = await ctx.store.list_events(namespace, name)
        if entity is None and not events:
            return render(request, "entity_missing.html", viewer, 404, namespace=namespace, name=name)
        now = ctx.wall_clock()
        series = ctx.recent_metrics.series(namespace, name, now) if ctx.recent_metrics is not None else []
        return render(request, "entity.html", viewer, entity=entity, namespace=namespace, name=name,
                      row=row(entity) if entity is not None else None, events=events, series=series,
                      shapes=shapes, now=now, event_path=event_path)  # fmt: skip

    return [Route(ENTITIES, entity_list, methods=["GET"]), Route(ENTITY, entity_page, methods=["GET"])]

"""The backend's HTTP API: health, Prometheus metrics, and Sensu Go's events and entities APIs.

Submitted events take the same path as an agent's (dedupe, state, store, handlers); the
response is sent once the event is stored, so a GET right after a 201 sees it.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pipeline import __version__
from pipeline.backend.api_lists import event_key, listed, named
from pipeline.backend.eventd import Outcome
from pipeline.backend.intake import Offer, PipelineFull, busy, store_all
from pipeline.backend.resources import API_KINDS, ResourceService
from pipeline.backend.silences import Silences
from pipeline.core.numbers import parse_int
from pipeline.core.timespec import parse_time
from pipeline.errors import EventTooLarge, ValidationError
from pipeline.http_answers import EXCEPTION_HANDLERS, error_response
from pipeline.logs import get_logger
from pipeline.metrics import BackendMetrics
from pipeline.model import Entity, Event, new_event_id
from pipeline.model.codec import decode, encode, load_json
from pipeline.model.pipeline import Silenced
from pipeline.store.base import TimelineQuery
from pipeline.store.service import StoreService

log = get_logger("backend.api")


EVENTS = "/api/core/v2/namespaces/{namespace}/events"
ENTITIES = "/api/core/v2/namespaces/{namespace}/entities"
DEAD_LETTERS = "/api/pipeline/v1/deadletters"
TIMELINE = "/api/core/v2/namespaces/{namespace}/timeline"
SILENCED = "/api/core/v2/namespaces/{namespace}/silenced"
EXECUTE = "/api/core/v2/namespaces/{namespace}/checks/{check}/execute"
#: Timeline entries per page, by default and at most.
TIMELINE_PAGE, TIMELINE_PAGE_MAX = 100, 1000


@dataclass(slots=True, frozen=True)
class ReplayResult:
    id: str
    ok: bool
    error: str


Replay = Callable[[str], Awaitable[ReplayResult | None]]
#: (namespace, check, subscriptions or None for the check's own) -> agents asked, None: no such check
Execute = Callable[[str, str, list[str] | None], Awaitable[int | None]]


@dataclass(slots=True, frozen=True)
class EntityService:
    """What the entities API needs from the backend besides the store."""

    last_seen: Callable[[str, str], float | None]
    deregister: Callable[[str, str], Awaitable[None]]
    #: told of every entity saved through the API (an ``agent`` one is then off limits to other agents)
    saved: Callable[[Entity], None] = lambda entity: None


def error(status: int, message: str) -> JSONResponse:
    return error_response(status, message)


def prepare_event(
    body: bytes,
    namespace: str,
    *,
    entity: str | None = None,
    check: str | None = None,
    now: float,
    ignored: list[str] | None = None,
) -> tuple[Event, bool]:
    """Decode and complete a submitted event as Sensu Go's API does (raises ValidationError).
    Also says whether the id was made here (a new id cannot be a replay). Fields the model does
    not know are dropped, as Sensu Go's JSON decoding does, and their paths put in ``ignored``."""
    event = Event.from_json(body, ignored=[] if ignored is None else ignored)
    if event.entity is None:
        raise ValidationError("entity", "event must contain an entity")
    if entity is not None:
        _fill_or_match(event.entity.metadata, "name", entity, "entity.metadata.name")
    if check is not None:
        if event.check is None:
            raise ValidationError("check", "event must contain a check")
        _fill_or_match(event.check.metadata, "name", check, "check.metadata.name")
    _fill_or_match(event.entity.metadata, "namespace", namespace, "entity.metadata.namespace")
    if event.check is not None:
        _fill_or_match(event.check.metadata, "namespace", namespace, "check.metadata.namespace")
        if not event.check.executed:
            event.check.executed = int(now)
    if not event.entity.entity_class:
        event.entity.entity_class = "proxy"
    if not event.metadata.namespace:
        event.metadata.namespace = namespace
    new_id = not event.id
    if new_id:
        event.id = new_event_id()
    event.validate()
    return event, new_id


def _fill_or_match(meta: Any, attr: str, wanted: str, path: str) -> None:
    given = getattr(meta, attr)
    if not given:
        setattr(meta, attr, wanted)
    elif given != wanted:
        raise ValidationError(path, f"{given!r} does not match {wanted!r} in the URL")


def create_app(
    store: StoreService,
    offer: Offer,
    metrics: BackendMetrics,
    *,
    entities: EntityService | None = None,
    replay: Replay | None = None,
    extra_routes: list[Route] | None = None,
    delete_event: Callable[[str, str, str], Awaitable[bool]] | None = None,
    silences: Silences | None = None,
    resources: ResourceService | None = None,
    execute: Execute | None = None,
    wall_clock: Callable[[], float] = time.time,
) -> Starlette:
    """The Starlette app; dependencies are passed in, background work lives in the daemon."""

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def version(request: Request) -> Response:
        """Sensu Go's ``/version``, which its clients read to know what they talk to."""
        return JSONResponse({"sensu_backend": __version__, "pipeline": __version__})

    async def prometheus(request: Request) -> Response:
        body = generate_latest(metrics.registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    async def list_events(request: Request) -> Response:
        """The latest events of a namespace (or of one entity); under ``/api/core/v2/events``, of all."""
        p = request.path_params
        events = await store.list_events(p.get("namespace"), p.get("entity"))
        return listed(request, "Event", events, event_key, Event.to_dict)

    async def get_event(request: Request) -> Response:
        p = request.path_params
        event = await store.get_event(p["namespace"], p["entity"], p["check"])
        if event is None:
            return error(404, f"event {p['entity']}/{p['check']} not found in namespace {p['namespace']}")
        return JSONResponse(event.to_dict())

    async def create_event(request: Request) -> Response:
        p = request.path_params
        body = await request.body()  # within --max-body-size: the HTTP server refuses more, unread
        metrics.events_received.labels("api").inc()
        ignored: list[str] = []
        try:
            event, new_id = prepare_event(body, p["namespace"], entity=p.get("entity"), check=p.get("check"),
                                          now=wall_clock(), ignored=ignored)  # fmt: skip
        except ValidationError as exc:
            metrics.events_rejected.labels("api").inc()
            log.info("rejected event from API", client=_client(request), error=exc)
            return error(400, str(exc))
        if ignored:
            metrics.fields_ignored.inc(len(ignored))
            log.debug("unknown fields ignored", client=_client(request), fields=",".join(ignored))
        try:
            (outcome,) = await store_all(offer, [event], new_ids=new_id)
        except PipelineFull:
            return busy(metrics, "api")
        except EventTooLarge as exc:
            metrics.events_rejected.labels("api").inc()
            return error(413, str(exc))
        if outcome is Outcome.FAILED:
            return error(500, "the event store failed; try again")
        return Response(status_code=201)

    async def list_silenced(request: Request) -> Response:
        """Every silence; under ``/subscriptions/{subscription}`` or ``/checks/{check}`` those of one."""
        assert silences is not None
        p = request.path_params
        found = silences.list(p["namespace"])
        if "subscription" in p:
            found = [e for e in found if e.subscription == p["subscription"]]
        if "check" in p:
            found = [e for e in found if e.check == p["check"]]
        return listed(request, "Silenced", found, named, encode)

    async def get_silenced(request: Request) -> Response:
        assert silences is not None
        p = request.path_params
        found = [e for e in silences.list(p["namespace"]) if e.metadata.name == p["name"]]
        if not found:
            return error(404, f"silence {p['name']} not found in namespace {p['namespace']}")
        return JSONResponse(encode(found[0]))

    async def json_body(request: Request) -> Any:
        """The request's JSON; a 400 response when it is not JSON."""
        try:
            return load_json(await request.body())
        except ValidationError as exc:
            return error(400, str(exc))

    async def create_silenced(request: Request) -> Response:
        assert silences is not None
        namespace = request.path_params["namespace"]
        data = await json_body(request)
        if isinstance(data, Response):
            return data
        try:
            entry = decode(Silenced, data, "")
            entry.metadata.namespace = entry.metadata.namespace or namespace
            if entry.metadata.namespace != namespace:
                raise ValidationError("metadata.namespace", f"{entry.metadata.namespace!r} does not match the URL")
            if "name" in request.path_params and entry.metadata.name not in ("", request.path_params["name"]):
                raise ValidationError("metadata.name", "does not match the URL")
            entry.validate()
        except ValidationError as exc:
            return error(400, str(exc))
        entry.metadata.name = entry.derived_name
        stored = await silences.put(entry)
        return JSONResponse(encode(stored), status_code=201)

    async def delete_silenced(request: Request) -> Response:
        assert silences is not None
        p = request.path_params
        if not await silences.delete(p["namespace"], p["name"]):
            return error(404, f"silence {p['name']} not found in namespace {p['namespace']}")
        return Response(status_code=204)

    def kind_of(request: Request) -> str | None:
        return API_KINDS.get(request.path_params["kind"])

    async def list_resources(request: Request) -> Response:
        assert resources is not None
        kind = kind_of(request)
        if kind is None:
            return error(404, f"no resources called {request.path_params['kind']!r}")
        return listed(request, kind, resources.list(kind, request.path_params["namespace"]), named, encode)

    async def get_resource(request: Request) -> Response:
        assert resources is not None
        kind, p = kind_of(request), request.path_params
        found = resources.get(kind, p["namespace"], p["name"]) if kind else None
        if found is None:
            return error(404, f"{p['kind']} {p['name']!r} not found in namespace {p['namespace']}")
        return JSONResponse(encode(found))

    async def put_resource(request: Request) -> Response:
        assert resources is not None
        kind, p = kind_of(request), request.path_params
        if kind is None:
            return error(404, f"no resources called {p['kind']!r}")
        body = await json_body(request)
        if isinstance(body, Response):
            return body
        if not isinstance(body, dict):
            return error(400, "expected a JSON object")
        if "spec" in body:
            document = dict(body)
        else:  # Sensu Go's API form: the spec's fields and metadata side by side
            spec = {k: v for k, v in body.items() if k != "metadata"}
            document = {"type": kind, "api_version": "core/v2", "metadata": body.get("metadata") or {}, "spec": spec}
        metadata = document.setdefault("metadata", {})
        if not isinstance(metadata, dict):
            return error(400, "metadata: expected an object")
        metadata.setdefault("namespace", p["namespace"])
        if "name" in p:
            metadata.setdefault("name", p["name"])
        try:
            if document.get("type") != kind:
                raise ValidationError("type", f"expected {kind!r} at this path, got {document.get('type')!r}")
            if metadata["namespace"] != p["namespace"] or ("name" in p and metadata["name"] != p["name"]):
                raise ValidationError("metadata", "name and namespace must match the URL")
            saved = await resources.put(document)
        except ValidationError as exc:
            return error(400, str(exc))
        return JSONResponse(encode(saved), status_code=201)

    async def delete_resource(request: Request) -> Response:
        assert resources is not None
        kind, p = kind_of(request), request.path_params
        try:
            deleted = await resources.delete(kind, p["namespace"], p["name"]) if kind else False
        except ValidationError as exc:
            return error(409, f"still in use: {exc}")
        if not deleted:
            return error(404, f"{p['kind']} {p['name']!r} not found in namespace {p['namespace']}")
        return Response(status_code=204)

    async def remove_event(request: Request) -> Response:
        p = request.path_params
        assert delete_event is not None
        if not await delete_event(p["namespace"], p["entity"], p["check"]):
            return error(404, f"event {p['entity']}/{p['check']} not found in namespace {p['namespace']}")
        return Response(status_code=204)

    def entity_json(entity: Entity) -> dict[str, Any]:
        seen = entities.last_seen(entity.metadata.namespace, entity.name) if entities else None
        data: dict[str, Any] = encode(entity)
        if seen is not None:
            data["last_seen"] = int(seen)
        return data

    async def list_entities(request: Request) -> Response:
        found = await store.list_entities(request.path_params["namespace"])
        return listed(request, "Entity", found, named, entity_json)

    async def get_entity(request: Request) -> Response:
        p = request.path_params
        entity = await store.get_entity(p["namespace"], p["entity"])
        if entity is None:
            return error(404, f"entity {p['entity']} not found in namespace {p['namespace']}")
        return JSONResponse(entity_json(entity))

    async def put_entity(request: Request) -> Response:
        """POST creates (409 if the name is taken), PUT creates or replaces; class ``proxy`` by default."""
        p = request.path_params
        data = await json_body(request)
        if isinstance(data, Response):
            return data
        try:
            entity = decode(Entity, data, "")
            _fill_or_match(entity.metadata, "namespace", p["namespace"], "metadata.namespace")
            if "entity" in p:
                _fill_or_match(entity.metadata, "name", p["entity"], "metadata.name")
            entity.entity_class = entity.entity_class or "proxy"
            entity.validate("")
        except ValidationError as exc:
            return error(400, str(exc))
        if request.method == "POST" and await store.get_entity(p["namespace"], entity.name) is not None:
            return error(409, f"entity {entity.name} already exists in namespace {p['namespace']}")
        created = await store.put_entity(entity)
        if entities is not None:
            entities.saved(entity)
        log.info("entity saved through the API", entity=entity.name, namespace=p["namespace"], created=created)
        return Response(status_code=201)

    async def delete_entity(request: Request) -> Response:
        p = request.path_params
        if await store.get_entity(p["namespace"], p["entity"]) is None:
            return error(404, f"entity {p['entity']} not found in namespace {p['namespace']}")
        assert entities is not None
        await entities.deregister(p["namespace"], p["entity"])
        return Response(status_code=204)

    async def execute_check(request: Request) -> Response:
        """Sensu's ad hoc execution: ``{check?, subscriptions?, reason?, creator?}``, 202 once asked."""
        assert execute is not None
        p = request.path_params
        data = await json_body(request) if (await request.body()).strip() else {}
        if isinstance(data, Response):
            return data
        try:
            subscriptions = _execution_request(data, p["check"])
        except ValidationError as exc:
            return error(400, str(exc))
        asked = await execute(p["namespace"], p["check"], subscriptions)
        if asked is None:
            return error(404, f"check {p['check']} not found in namespace {p['namespace']}")
        log.info("ad hoc execution", check=p["check"], agents=asked, reason=data.get("reason", ""),
                 creator=data.get("creator", ""), client=_client(request))  # fmt: skip
        return JSONResponse({"issued": int(wall_clock()), "agents": asked}, status_code=202)

    async def list_dead_letters(request: Request) -> Response:
        letters = await store.list_dead_letters()  # oldest first, as the store keeps them
        return listed(request, None, letters, lambda letter: (f"{letter.created:020d}", letter.id), encode)

    async def get_dead_letter(request: Request) -> Response:
        letter = await store.get_dead_letter(request.path_params["id"])
        if letter is None:
            return error(404, f"dead letter {request.path_params['id']} not found")
        return JSONResponse(encode(letter))

    async def delete_dead_letter(request: Request) -> Response:
        if not await store.delete_dead_letter(request.path_params["id"]):
            return error(404, f"dead letter {request.path_params['id']} not found")
        return Response(status_code=204)

    async def replay_dead_letter(request: Request) -> Response:
        assert replay is not None
        result = await replay(request.path_params["id"])
        if result is None:
            return error(404, f"dead letter {request.path_params['id']} not found")
        body = {"id": result.id, "replayed": result.ok, "error": result.error}
        return JSONResponse(body, status_code=200 if result.ok else 502)

    async def timeline(request: Request) -> Response:
        params = request.query_params
        now = wall_clock()
        bounds: dict[str, int | None] = {}
        for name in ("since", "until"):
            try:
                bounds[name] = parse_time(params[name], now) if params.get(name) else None
            except ValueError as exc:
                return error(400, f"{name}: {exc}")
        since, until = bounds["since"], bounds["until"]
        raw_limit = params.get("limit", str(TIMELINE_PAGE))
        limit = parse_int(raw_limit, (1, TIMELINE_PAGE_MAX))
        if limit is None:
            return error(400, f"limit: between 1 and {TIMELINE_PAGE_MAX}, got {raw_limit[:40]!r}")
        try:
            after = TimelineQuery.cursor(params["continue"]) if params.get("continue") else None
        except ValueError as exc:
            return error(400, f"continue: {exc} (use the Sensu-Continue header of the previous page)")
        query = TimelineQuery(request.path_params["namespace"], since, until, params.get("entity", ""),
                              params.get("type", ""), limit, after)  # fmt: skip
        events, cursor = await store.timeline(query)
        headers = {"Sensu-Continue": cursor} if cursor else {}
        return JSONResponse([e.to_dict() for e in events], headers=headers)

    routes = [
        Route("/health", health),
        Route("/version", version),
        Route("/metrics", prometheus),
        Route("/api/core/v2/events", list_events, methods=["GET"]),
        Route(EVENTS, list_events, methods=["GET"]),
        Route(EVENTS, create_event, methods=["POST"]),
        Route(EVENTS + "/{entity}", list_events, methods=["GET"]),
        Route(EVENTS + "/{entity}/{check}", get_event, methods=["GET"]),
        Route(EVENTS + "/{entity}/{check}", create_event, methods=["PUT", "POST"]),
        Route(ENTITIES, list_entities, methods=["GET"]),
        Route(ENTITIES + "/{entity}", get_entity, methods=["GET"]),
        Route(ENTITIES, put_entity, methods=["POST"]),
        Route(ENTITIES + "/{entity}", put_entity, methods=["PUT"]),
        Route(TIMELINE, timeline, methods=["GET"]),
        Route(DEAD_LETTERS, list_dead_letters, methods=["GET"]),
        Route(DEAD_LETTERS + "/{id}", get_dead_letter, methods=["GET"]),
        Route(DEAD_LETTERS + "/{id}", delete_dead_letter, methods=["DELETE"]),
    ]
    if silences is not None:
        routes += [
            Route(SILENCED, list_silenced, methods=["GET"]),
            Route(SILENCED + "/subscriptions/{subscription}", list_silenced, methods=["GET"]),
            Route(SILENCED + "/checks/{check}", list_silenced, methods=["GET"]),
            Route(SILENCED + "/{name}", get_silenced, methods=["GET"]),
            Route(SILENCED, create_silenced, methods=["POST"]),
            Route(SILENCED + "/{name}", create_silenced, methods=["PUT"]),
            Route(SILENCED + "/{name}", delete_silenced, methods=["DELETE"]),
        ]
    if delete_event is not None:
        routes.append(Route(EVENTS + "/{entity}/{check}", remove_event, methods=["DELETE"]))
    if replay is not None:
        routes.append(Route(DEAD_LETTERS + "/{id}/replay", replay_dead_letter, methods=["POST"]))
    if entities is not None:
        routes.append(Route(ENTITIES + "/{entity}", delete_entity, methods=["DELETE"]))
    if execute is not None:
        routes.append(Route(EXECUTE, execute_check, methods=["POST"]))
    if resources is not None:  # after every fixed path: {kind} would match them
        resource_path = "/api/core/v2/namespaces/{namespace}/{kind}"
        routes += [
            Route(resource_path, list_resources, methods=["GET"]),
            Route(resource_path, put_resource, methods=["POST"]),
            Route(resource_path + "/{name}", get_resource, methods=["GET"]),
            Route(resource_path + "/{name}", put_resource, methods=["PUT"]),
            Route(resource_path + "/{name}", delete_resource, methods=["DELETE"]),
        ]
    routes.extend(extra_routes or [])  # last: the push formats' paths are catch-alls of two segments
    return Starlette(routes=routes, exception_handlers=EXCEPTION_HANDLERS)


def _execution_request(data: Any, check: str) -> list[str] | None:
    """The subscriptions an ad hoc request names (None: the check's own); ValidationError naming the field."""
    if not isinstance(data, dict):
        raise ValidationError("", "expected a JSON object")
    if data.get("check", check) != check:
        raise ValidationError("check", f"{data['check']!r} does not match {check!r} in the URL")
    subscriptions = data.get("subscriptions")
    if subscriptions is None or subscriptions == []:
        return None
    if not isinstance(subscriptions, list) or not all(isinstance(s, str) and s for s in subscriptions):
        raise ValidationError("subscriptions", "expected a list of subscription names")
    return subscriptions


def _client(request: Request) -> str:
    return f"{request.client.host}:{request.client.port}" if request.client else "unknown"


__all__ = ["EntityService", "ReplayResult", "create_app", "prepare_event"]

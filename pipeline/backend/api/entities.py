"""Sensu Go's entities API: agents register themselves; proxies are created here or by events."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pipeline.backend.api.common import fill_or_match, json_body, not_found
from pipeline.backend.api.lists import listed, named
from pipeline.errors import ValidationError
from pipeline.http_answers import error_response
from pipeline.logs import get_logger
from pipeline.model import Entity
from pipeline.model.codec import decode, encode
from pipeline.store.service import StoreService

log = get_logger("backend.api")

ENTITIES = "/api/core/v2/namespaces/{namespace}/entities"


@dataclass(slots=True, frozen=True)
class EntityService:
    """What the entities API needs from the backend besides the store."""

    last_seen: Callable[[str, str], float | None]
    deregister: Callable[[str, str], Awaitable[None]]
    #: told of every entity saved through the API (an ``agent`` one is then off limits to other agents)
    saved: Callable[[Entity], None] = lambda entity: None


def entity_routes(store: StoreService, entities: EntityService) -> list[Route]:
    def entity_json(entity: Entity) -> dict[str, Any]:
        seen = entities.last_seen(entity.metadata.namespace, entity.name)
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
            return not_found("entity", p["entity"], p["namespace"])
        return JSONResponse(entity_json(entity))

    async def put_entity(request: Request) -> Response:
        """POST creates (409 if the name is taken), PUT creates or replaces; class ``proxy`` by default."""
        p = request.path_params
        data = await json_body(request)
        if isinstance(data, Response):
            return data
        try:
            entity = decode(Entity, data, "")
            fill_or_match(entity.metadata, "namespace", p["namespace"], "metadata.namespace")
            if "entity" in p:
                fill_or_match(entity.metadata, "name", p["entity"], "metadata.name")
            entity.entity_class = entity.entity_class or "proxy"
            entity.validate("")
        except ValidationError as exc:
            return error_response(400, str(exc))
        if request.method == "POST" and await store.get_entity(p["namespace"], entity.name) is not None:
            return error_response(409, f"entity {entity.name} already exists in namespace {p['namespace']}")
        created = await store.put_entity(entity)
        entities.saved(entity)
        log.info("entity saved through the API", entity=entity.name, namespace=p["namespace"], created=created)
        return Response(status_code=201)

    async def delete_entity(request: Request) -> Response:
        p = request.path_params
        if await store.get_entity(p["namespace"], p["entity"]) is None:
            return not_found("entity", p["entity"], p["namespace"])
        await entities.deregister(p["namespace"], p["entity"])
        return Response(status_code=204)

    return [
        Route(ENTITIES, list_entities, methods=["GET"]),
        Route(ENTITIES + "/{entity}", get_entity, methods=["GET"]),
        Route(ENTITIES, put_entity, methods=["POST"]),
        Route(ENTITIES + "/{entity}", put_entity, methods=["PUT"]),
        Route(ENTITIES + "/{entity}", delete_entity, methods=["DELETE"]),
    ]

"""Sensu Go's entities API: agents register themselves; proxies are created here or by events."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pipeline.backend.api.common import not_found
from pipeline.backend.api.lists import listed, named, takes_list_query
from pipeline.backend.api.writes import Writable, Writer, stale, with_etag
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


def entity_routes(store: StoreService, entities: EntityService, writer: Writer) -> list[Route]:
    def entity_json(entity: Entity) -> dict[str, Any]:
        seen = entities.last_seen(entity.metadata.namespace, entity.name)
        data: dict[str, Any] = encode(entity)
        if seen is not None:
            data["last_seen"] = int(seen)
        return data

    @takes_list_query
    async def list_entities(request: Request) -> Response:
        found = await store.list_entities(request.path_params.get("namespace"))
        return listed(request, "Entity", found, named, entity_json)

    async def get_entity(request: Request) -> Response:
        p = request.path_params
        entity = await store.get_entity(p["namespace"], p["entity"])
        if entity is None:
            return not_found("entity", p["entity"], p["namespace"])
        return with_etag(entity_json(entity))

    async def find(namespace: str, name: str) -> Entity | None:
        return await store.get_entity(namespace, name)

    async def save(flat: dict[str, Any]) -> Entity:
        """Class ``proxy`` when the body names none, as Sensu Go's API does."""
        entity = decode(Entity, flat, "")
        entity.entity_class = entity.entity_class or "proxy"
        entity.validate("")
        created = await store.put_entity(entity)
        entities.saved(entity)
        log.info("entity saved through the API", entity=entity.name, namespace=entity.metadata.namespace,
                 created=created)  # fmt: skip
        return entity

    writable = Writable("Entity", Entity, find, save, entity_json)

    async def write_entity(request: Request) -> Response:
        return await writer.write(request, writable, name_param="entity")

    async def delete_entity(request: Request) -> Response:
        p = request.path_params
        entity = await store.get_entity(p["namespace"], p["entity"])
        if entity is None:
            return not_found("entity", p["entity"], p["namespace"])
        if (refused := stale(request, entity_json(entity))) is not None:
            return refused
        await entities.deregister(p["namespace"], p["entity"])
        return Response(status_code=204)

    return [
        Route("/api/core/v2/entities", list_entities, methods=["GET"]),  # across namespaces
        Route(ENTITIES, list_entities, methods=["GET"]),
        Route(ENTITIES + "/{entity}", get_entity, methods=["GET"]),
        Route(ENTITIES, write_entity, methods=["POST"]),
        Route(ENTITIES + "/{entity}", write_entity, methods=["PUT", "PATCH"]),
        Route(ENTITIES + "/{entity}", delete_entity, methods=["DELETE"]),
    ]

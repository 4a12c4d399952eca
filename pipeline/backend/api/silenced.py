"""Sensu Go's silenced API: entries by subscription and/or check, named ``subscription:check``."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pipeline.backend.api.common import not_found
from pipeline.backend.api.lists import listed, named, takes_list_query
from pipeline.backend.api.writes import Writable, Writer, stale, with_etag
from pipeline.backend.silences import Silences
from pipeline.model.codec import decode, encode
from pipeline.model.pipeline import Silenced, silence_name

SILENCED = "/api/core/v2/namespaces/{namespace}/silenced"


def silenced_routes(silences: Silences, writer: Writer) -> list[Route]:
    @takes_list_query
    async def list_silenced(request: Request) -> Response:
        """Every silence; under ``/subscriptions/{subscription}`` or ``/checks/{check}`` those of one."""
        p = request.path_params
        found = silences.list(p.get("namespace"))
        if "subscription" in p:
            found = [e for e in found if e.subscription == p["subscription"]]
        if "check" in p:
            found = [e for e in found if e.check == p["check"]]
        return listed(request, "Silenced", found, named, encode)

    async def get_silenced(request: Request) -> Response:
        p = request.path_params
        found = [e for e in silences.list(p["namespace"]) if e.metadata.name == p["name"]]
        if not found:
            return not_found("silence", p["name"], p["namespace"])
        return with_etag(encode(found[0]))

    async def find(namespace: str, name: str) -> Silenced | None:
        return next((e for e in silences.list(namespace) if e.metadata.name == name), None)

    async def save(flat: dict[str, Any]) -> Silenced:
        entry = decode(Silenced, flat, "")
        entry.validate()  # a name that is not <subscription>:<check> is refused here
        entry.metadata.name = entry.derived_name
        return await silences.put(entry)

    def name_of(flat: dict[str, Any]) -> str:
        """A silence's name is its subscription and check: a POST of an existing pair is a conflict."""
        subscription, check = flat.get("subscription"), flat.get("check")
        if isinstance(subscription, str | None) and isinstance(check, str | None):
            return silence_name(subscription or "", check or "")
        return ""  # the save names the field

    writable = Writable("Silenced", Silenced, find, save, name_of=name_of)

    async def write_silenced(request: Request) -> Response:
        return await writer.write(request, writable)

    async def delete_silenced(request: Request) -> Response:
        p = request.path_params
        found = await find(p["namespace"], p["name"])
        if (refused := stale(request, None if found is None else encode(found))) is not None:
            return refused
        if not await silences.delete(p["namespace"], p["name"]):
            return not_found("silence", p["name"], p["namespace"])
        return Response(status_code=204)

    return [
        Route("/api/core/v2/silenced", list_silenced, methods=["GET"]),  # across namespaces
        Route(SILENCED, list_silenced, methods=["GET"]),
        Route(SILENCED + "/subscriptions/{subscription}", list_silenced, methods=["GET"]),
        Route(SILENCED + "/checks/{check}", list_silenced, methods=["GET"]),
        Route(SILENCED + "/{name}", get_silenced, methods=["GET"]),
        Route(SILENCED, write_silenced, methods=["POST"]),
        Route(SILENCED + "/{name}", write_silenced, methods=["PUT", "PATCH"]),
        Route(SILENCED + "/{name}", delete_silenced, methods=["DELETE"]),
    ]

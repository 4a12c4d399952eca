"""Sensu Go's silenced API: entries by subscription and/or check, named ``subscription:check``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pipeline.backend.api.common import json_body, not_found
from pipeline.backend.api.lists import listed, named
from pipeline.backend.silences import Silences
from pipeline.errors import ValidationError
from pipeline.http_answers import error_response
from pipeline.model.codec import decode, encode
from pipeline.model.pipeline import Silenced

SILENCED = "/api/core/v2/namespaces/{namespace}/silenced"


def silenced_routes(silences: Silences) -> list[Route]:
    async def list_silenced(request: Request) -> Response:
        """Every silence; under ``/subscriptions/{subscription}`` or ``/checks/{check}`` those of one."""
        p = request.path_params
        found = silences.list(p["namespace"])
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
        return JSONResponse(encode(found[0]))

    async def create_silenced(request: Request) -> Response:
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
            return error_response(400, str(exc))
        entry.metadata.name = entry.derived_name
        stored = await silences.put(entry)
        return JSONResponse(encode(stored), status_code=201)

    async def delete_silenced(request: Request) -> Response:
        p = request.path_params
        if not await silences.delete(p["namespace"], p["name"]):
            return not_found("silence", p["name"], p["namespace"])
        return Response(status_code=204)

    return [
        Route(SILENCED, list_silenced, methods=["GET"]),
        Route(SILENCED + "/subscriptions/{subscription}", list_silenced, methods=["GET"]),
        Route(SILENCED + "/checks/{check}", list_silenced, methods=["GET"]),
        Route(SILENCED + "/{name}", get_silenced, methods=["GET"]),
        Route(SILENCED, create_silenced, methods=["POST"]),
        Route(SILENCED + "/{name}", create_silenced, methods=["PUT"]),
        Route(SILENCED + "/{name}", delete_silenced, methods=["DELETE"]),
    ]

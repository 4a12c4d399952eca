"""Sensu Go's APIs of the configured kinds: checks, hooks, handlers, filters, mutators, pipelines.
Mounted after every fixed path, since ``/namespaces/{namespace}/{kind}`` would match them."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pipeline.backend.api.common import json_body
from pipeline.backend.api.lists import listed, named
from pipeline.backend.resources import API_KINDS, ResourceService
from pipeline.errors import ValidationError
from pipeline.http_answers import error_response
from pipeline.model.codec import encode

RESOURCES = "/api/core/v2/namespaces/{namespace}/{kind}"


def kind_routes(resources: ResourceService) -> list[Route]:
    def kind_of(request: Request) -> str | None:
        return API_KINDS.get(request.path_params["kind"])

    def no_such_kind(request: Request) -> Response:
        return error_response(404, f"no resources called {request.path_params['kind']!r}")

    def not_found(request: Request) -> Response:
        p = request.path_params
        return error_response(404, f"{p['kind']} {p['name']!r} not found in namespace {p['namespace']}")

    async def list_resources(request: Request) -> Response:
        kind = kind_of(request)
        if kind is None:
            return no_such_kind(request)
        return listed(request, kind, resources.list(kind, request.path_params["namespace"]), named, encode)

    async def get_resource(request: Request) -> Response:
        kind, p = kind_of(request), request.path_params
        found = resources.get(kind, p["namespace"], p["name"]) if kind else None
        if found is None:
            return not_found(request)
        return JSONResponse(encode(found))

    async def put_resource(request: Request) -> Response:
        kind, p = kind_of(request), request.path_params
        if kind is None:
            return no_such_kind(request)
        body = await json_body(request)
        if isinstance(body, Response):
            return body
        if not isinstance(body, dict):
            return error_response(400, "expected a JSON object")
        if "spec" in body:
            document = dict(body)
        else:  # Sensu Go's API form: the spec's fields and metadata side by side
            spec = {k: v for k, v in body.items() if k != "metadata"}
            document = {"type": kind, "api_version": "core/v2", "metadata": body.get("metadata") or {}, "spec": spec}
        metadata = document.setdefault("metadata", {})
        if not isinstance(metadata, dict):
            return error_response(400, "metadata: expected an object")
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
            return error_response(400, str(exc))
        return JSONResponse(encode(saved), status_code=201)

    async def delete_resource(request: Request) -> Response:
        kind, p = kind_of(request), request.path_params
        try:
            deleted = await resources.delete(kind, p["namespace"], p["name"]) if kind else False
        except ValidationError as exc:
            return error_response(409, f"still in use: {exc}")
        if not deleted:
            return not_found(request)
        return Response(status_code=204)

    return [
        Route(RESOURCES, list_resources, methods=["GET"]),
        Route(RESOURCES, put_resource, methods=["POST"]),
        Route(RESOURCES + "/{name}", get_resource, methods=["GET"]),
        Route(RESOURCES + "/{name}", put_resource, methods=["PUT"]),
        Route(RESOURCES + "/{name}", delete_resource, methods=["DELETE"]),
    ]

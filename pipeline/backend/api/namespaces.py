"""Sensu Go's namespaces API. Every resource, entity and event lives in a namespace: ``default``
always exists, any other once a ``Namespace`` declares it (in the config files or here). A write
into a namespace that does not exist is 404; a namespace is deleted only when nothing lives in it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pipeline.backend.api.common import json_body
from pipeline.backend.api.lists import listed, takes_list_query
from pipeline.backend.api.writes import API_VERSION, unwrap
from pipeline.backend.resources import ResourceService
from pipeline.errors import ResourceInUse, ValidationError
from pipeline.http_answers import error_response
from pipeline.model import DEFAULT_NAMESPACE
from pipeline.model.codec import decode, encode
from pipeline.model.resources import Namespace

#: namespace -> what else lives in it (entities, events), as words for a refusal; empty when nothing
Occupants = Callable[[str], Awaitable[list[str]]]


def namespaces_of(resources: ResourceService) -> list[Namespace]:
    """Every namespace, ``default`` included, by name."""
    declared = {namespace.name: namespace for namespace in resources.list("Namespace", None)}
    declared.setdefault(DEFAULT_NAMESPACE, Namespace(DEFAULT_NAMESPACE))
    return [declared[name] for name in sorted(declared)]


NAMESPACES = "/api/core/v2/namespaces"


def namespace_routes(resources: ResourceService, occupants: Occupants) -> list[Route]:
    def exists(name: str) -> bool:
        return resources.current.namespace_exists(name)

    @takes_list_query
    async def list_namespaces(request: Request) -> Response:
        return listed(request, "Namespace", namespaces_of(resources), lambda ns: ("", ns.name), encode)

    async def get_namespace(request: Request) -> Response:
        name = request.path_params["namespace"]
        if not exists(name):
            return error_response(404, f"namespace {name!r} not found")
        return JSONResponse({"name": name})

    async def put_namespace(request: Request) -> Response:
        """POST creates (409 if it exists), PUT creates or keeps; ``{"name"}`` flat or wrapped."""
        body = await json_body(request)
        if isinstance(body, Response):
            return body
        try:
            flat = unwrap(body, "Namespace")
            flat.pop("metadata", None)  # a wrapped Namespace has empty metadata: its name is the spec's
            namespace = decode(Namespace, flat, "")
            wanted = request.path_params.get("namespace")
            if wanted is not None and namespace.name not in ("", wanted):
                raise ValidationError("name", f"{namespace.name!r} does not match {wanted!r} in the URL")
            namespace.name = namespace.name or (wanted or "")
            namespace.validate()
        except ValidationError as exc:
            return error_response(400, str(exc))
        if request.method == "POST" and exists(namespace.name):
            return error_response(409, f"namespace {namespace.name} already exists")
        if namespace.name != DEFAULT_NAMESPACE:
            document: dict[str, Any] = {"type": "Namespace", "api_version": API_VERSION, "metadata": {},
                                        "spec": {"name": namespace.name}}  # fmt: skip
            try:
                await resources.put(document)
            except ValidationError as exc:
                return error_response(400, str(exc))
        return JSONResponse({"name": namespace.name}, status_code=201)

    async def delete_namespace(request: Request) -> Response:
        name = request.path_params["namespace"]
        if name == DEFAULT_NAMESPACE:
            return error_response(409, "the default namespace always exists")
        if not exists(name):
            return error_response(404, f"namespace {name!r} not found")
        others = await occupants(name)
        if others:
            return error_response(409, f"namespace {name} is not empty: {', '.join(others)}")
        try:
            await resources.delete("Namespace", "", name)
        except ResourceInUse as exc:  # resources of the configured kinds still live in it
            return error_response(409, f"namespace {name} is not empty: {', '.join(exc.referrers)}")
        return Response(status_code=204)

    return [
        Route(NAMESPACES, list_namespaces, methods=["GET"]),
        Route(NAMESPACES, put_namespace, methods=["POST"]),
        Route(NAMESPACES + "/{namespace}", get_namespace, methods=["GET"]),
        Route(NAMESPACES + "/{namespace}", put_namespace, methods=["PUT"]),
        Route(NAMESPACES + "/{namespace}", delete_namespace, methods=["DELETE"]),
    ]

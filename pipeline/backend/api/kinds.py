"""Sensu Go's APIs of the configured kinds: checks, hooks, handlers, filters, mutators, pipelines.
Mounted after every fixed path, since ``/namespaces/{namespace}/{kind}`` would match them."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pipeline.backend.api.lists import listed, named, takes_list_query
from pipeline.backend.api.writes import API_VERSION, Writable, Writer, stale, with_etag
from pipeline.backend.resources import API_KINDS, ResourceService
from pipeline.errors import ValidationError
from pipeline.http_answers import error_response
from pipeline.model.codec import encode
from pipeline.model.resources import RESOURCE_TYPES

RESOURCES = "/api/core/v2/namespaces/{namespace}/{kind}"
#: Sensu Go's namespaced core/v2 collections that pipeline does not have: refused as such (501),
#: not as a typo (404), so that a client learns it must do without them.
NOT_SUPPORTED = {"roles": "Role", "rolebindings": "RoleBinding"}
#: The same for Sensu Go's cluster-wide collections (API keys: pipeline's own at /api/pipeline/v1/keys).
CLUSTER_NOT_SUPPORTED = {"users": "User", "clusterroles": "ClusterRole", "clusterrolebindings": "ClusterRoleBinding",
                         "apikeys": "APIKey (use /api/pipeline/v1/keys)", "tessen": "TessenConfig"}  # fmt: skip


def kind_routes(resources: ResourceService, writer: Writer) -> list[Route]:
    def kind_of(request: Request) -> str | None:
        return API_KINDS.get(request.path_params["kind"])

    def no_such_kind(request: Request) -> Response:
        collection = request.path_params["kind"]
        cluster = "namespace" not in request.path_params
        unsupported = {**NOT_SUPPORTED, **CLUSTER_NOT_SUPPORTED} if cluster else NOT_SUPPORTED
        if collection in unsupported:
            return error_response(501, f"pipeline does not support Sensu Go's {unsupported[collection]} resources")
        return error_response(404, f"no resources called {collection!r}")

    async def cluster_wide(request: Request) -> Response:
        """Sensu Go's cluster-wide kinds pipeline lacks (501); any other path here is unknown (404)."""
        if request.path_params["kind"] in CLUSTER_NOT_SUPPORTED:
            return no_such_kind(request)
        return error_response(404, f"no such path: {request.url.path[:200]}")

    def not_found(request: Request) -> Response:
        p = request.path_params
        return error_response(404, f"{p['kind']} {p['name']!r} not found in namespace {p['namespace']}")

    @takes_list_query
    async def list_resources(request: Request) -> Response:
        kind = kind_of(request)
        if kind is None:
            return no_such_kind(request)
        return listed(request, kind, resources.list(kind, request.path_params.get("namespace")), named, encode)

    async def get_resource(request: Request) -> Response:
        kind, p = kind_of(request), request.path_params
        if kind is None:
            return no_such_kind(request)
        found = resources.get(kind, p["namespace"], p["name"])
        if found is None:
            return not_found(request)
        return with_etag(encode(found))

    def writable(kind: str) -> Writable[Any]:
        async def find(namespace: str, name: str) -> Any:
            return resources.get(kind, namespace, name)

        async def save(flat: dict[str, Any]) -> Any:
            spec = {key: value for key, value in flat.items() if key != "metadata"}
            document = {"type": kind, "api_version": API_VERSION, "metadata": flat["metadata"], "spec": spec}
            return await resources.put(document)

        return Writable(kind, RESOURCE_TYPES[kind], find, save)

    async def write_resource(request: Request) -> Response:
        kind = kind_of(request)
        if kind is None:
            return no_such_kind(request)
        return await writer.write(request, writable(kind))

    async def delete_resource(request: Request) -> Response:
        kind, p = kind_of(request), request.path_params
        if kind is None:
            return no_such_kind(request)
        found = resources.get(kind, p["namespace"], p["name"])
        if (refused := stale(request, None if found is None else encode(found))) is not None:
            return refused
        try:
            deleted = await resources.delete(kind, p["namespace"], p["name"])
        except ValidationError as exc:
            return error_response(409, f"still in use: {exc}")
        if not deleted:
            return not_found(request)
        return Response(status_code=204)

    return [
        Route("/api/core/v2/{kind}", list_resources, methods=["GET"]),  # across namespaces
        Route(RESOURCES, list_resources, methods=["GET"]),
        Route(RESOURCES, write_resource, methods=["POST"]),
        Route(RESOURCES + "/{name}", get_resource, methods=["GET"]),
        Route(RESOURCES + "/{name}", write_resource, methods=["PUT", "PATCH"]),
        Route(RESOURCES + "/{name}", delete_resource, methods=["DELETE"]),
        Route("/api/core/v2/{kind}", cluster_wide, methods=["POST"]),
        Route("/api/core/v2/{kind}/{name}", cluster_wide, methods=["GET", "PUT", "PATCH", "DELETE"]),
    ]

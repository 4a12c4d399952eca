"""pipeline's own resource routes beside Sensu Go's API.

``POST /api/pipeline/v1/apply`` takes a JSON list of wrapped resource documents (``{type,
api_version, metadata, spec}``, what ``pipeline create -f`` read) and applies them all or none:
every document is validated first, alone and with the running set, then all are stored in one
store transaction (under ResourceService's lock, so no other change interleaves). A refusal is
400 listing each refused document by its number in the list (1-based), its field and why; then
nothing has changed. Silences go to the silences service after the resources (validated with
them first). Entities have their own API (``PUT .../entities/{name}``) and are refused here.

Where a resource comes from (the config directory or the API, whose change wins) is listed
apart, at ``GET /api/pipeline/v1/resources/origins``, so that Sensu's JSON of each resource
stays as Sensu's clients read and write it back; ``DELETE /api/pipeline/v1/overrides/{kind}/
{namespace}/{name}`` drops the API's change and runs the config files' version again.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pipeline.backend.resources import API_KINDS, ResourceService
from pipeline.backend.silences import Silences
from pipeline.config.loader import resource_from_document
from pipeline.errors import DocumentsRefused, ValidationError
from pipeline.http_answers import error_body, error_response
from pipeline.logs import get_logger
from pipeline.model.codec import load_json
from pipeline.model.pipeline import Silenced

log = get_logger("backend.resource_routes")

APPLY = "/api/pipeline/v1/apply"
ORIGINS = "/api/pipeline/v1/resources/origins"
OVERRIDES = "/api/pipeline/v1/overrides/{kind}/{namespace}/{name}"
#: Documents one apply takes at most (a sensuctl dump of a large site holds a few thousand).
MAX_DOCUMENTS = 10_000


def resource_routes(resources: ResourceService, silences: Silences) -> list[Route]:
    """The routes of this module, for the backend's HTTP app."""

    async def apply(request: Request) -> Response:
        try:
            documents = _documents(load_json(await request.body()))
            silenced, refused = _silences(documents)
            others = [(i, d) for i, d in enumerate(documents) if d.get("type") not in ("Silenced", "Entity")]
            if refused:  # report the others' own mistakes too, in document order
                refused.extend((i, e) for i, d in others if (e := _problem(d)) is not None)
                raise DocumentsRefused(sorted(refused, key=lambda item: item[0]))
            try:
                keys = await resources.apply([d for _, d in others])
            except DocumentsRefused as exc:  # its numbers count the others only
                raise DocumentsRefused([(others[i][0] if i >= 0 else -1, e) for i, e in exc.errors]) from None
        except ValidationError as exc:
            return error_response(400, str(exc))
        except DocumentsRefused as exc:
            return _refused(exc)
        for entry in silenced:
            await silences.put(entry)
        applied = [f"{kind} {namespace}/{name}" for kind, namespace, name in keys]
        applied += [f"Silenced {e.metadata.namespace}/{e.metadata.name}" for e in silenced]
        log.info("documents applied", count=len(applied))
        return JSONResponse({"applied": applied})

    async def origins(request: Request) -> Response:
        """Where each running resource comes from: ``file`` (the config directory) or ``api``."""
        found = [{"type": kind, "namespace": namespace, "name": name, "source": source}
                 for kind, namespace, name, source in resources.origins()]  # fmt: skip
        return JSONResponse(found)

    async def revert(request: Request) -> Response:
        p = request.path_params
        kind = API_KINDS.get(p["kind"])
        try:
            reverted = kind is not None and await resources.revert(kind, p["namespace"], p["name"])
        except ValidationError as exc:
            return error_response(409, str(exc))
        if not reverted:
            return error_response(404, f"{p['kind']} {p['name']!r} in namespace {p['namespace']} has no API change")
        return Response(status_code=204)

    return [Route(APPLY, apply, methods=["POST"]), Route(ORIGINS, origins, methods=["GET"]),
            Route(OVERRIDES, revert, methods=["DELETE"])]  # fmt: skip


def _documents(body: Any) -> list[dict[str, Any]]:
    if not isinstance(body, list) or not all(isinstance(d, dict) for d in body):
        raise ValidationError("", "expected a JSON list of {type, api_version, metadata, spec} documents")
    if len(body) > MAX_DOCUMENTS:
        raise ValidationError("", f"{len(body)} documents: at most {MAX_DOCUMENTS} in one apply")
    return body


def _problem(document: dict[str, Any]) -> ValidationError | None:
    try:
        resource_from_document(document)
    except ValidationError as exc:
        return exc
    return None


def _silences(documents: list[dict[str, Any]]) -> tuple[list[Silenced], list[tuple[int, ValidationError]]]:
    """The silences among ``documents``, validated, and the refusals (entities have their own API)."""
    found: list[Silenced] = []
    refused: list[tuple[int, ValidationError]] = []
    for index, document in enumerate(documents):
        kind = document.get("type")
        if kind == "Entity":
            message = "entities are created through PUT /api/core/v2/namespaces/{namespace}/entities/{name}"
            refused.append((index, ValidationError("type", message)))
        elif kind == "Silenced":
            try:
                found.append(resource_from_document(document))
            except ValidationError as exc:
                refused.append((index, exc))
    return found, refused


def _refused(exc: DocumentsRefused) -> Response:
    errors = [{"document": index + 1 if index >= 0 else None, "field": error.path, "message": error.message}
              for index, error in exc.errors]  # fmt: skip
    body = {**error_body(400, f"nothing applied: {len(errors)} document(s) refused"), "errors": errors}
    return JSONResponse(body, status_code=400)

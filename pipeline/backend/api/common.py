"""What every family of API routes shares: reading a JSON body, naming the client, matching a
body's names against the URL's."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from pipeline.errors import ValidationError
from pipeline.http_answers import error_response
from pipeline.model.codec import load_json


async def json_body(request: Request) -> Any:
    """The request's JSON; a 400 response when it is not JSON (the caller returns it as it is)."""
    try:
        return load_json(await request.body())
    except ValidationError as exc:
        return error_response(400, str(exc))


def fill_or_match(meta: Any, attr: str, wanted: str, path: str) -> None:
    """Take the URL's name where the body has none; refuse a body naming something else."""
    given = getattr(meta, attr)
    if not given:
        setattr(meta, attr, wanted)
    elif given != wanted:
        raise ValidationError(path, f"{given!r} does not match {wanted!r} in the URL")


def client_of(request: Request) -> str:
    """``host:port`` of the client, for log lines."""
    return f"{request.client.host}:{request.client.port}" if request.client else "unknown"


def not_found(what: str, name: str, namespace: str | None = None) -> Response:
    where = f" in namespace {namespace}" if namespace is not None else ""
    return error_response(404, f"{what} {name} not found{where}")


def unknown_namespace(namespace: str) -> Response:
    """A write into a namespace that no ``Namespace`` declares, as Sensu Go refuses it."""
    return error_response(
        404, f"namespace {namespace!r} not found: create it first (PUT /api/core/v2/namespaces/{namespace})"
    )

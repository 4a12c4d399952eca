"""How the API writes a resource, for every kind alike, as Sensu Go's API does:

- ``POST`` to the collection creates (409 when the name is taken), ``PUT`` to the name creates or
  replaces, both 201; ``PATCH`` to the name applies a JSON merge patch (RFC 7396, content type
  ``application/merge-patch+json``) to the stored resource and answers 200 with the result;
- a body is Sensu's flat form (the spec's fields with ``metadata`` beside them) or the wrapped
  form ``{type, api_version, metadata, spec}`` that sensuctl and ``dump`` write;
- the URL's namespace and name fill the body's when it has none, and must match when it has;
- fields the kind does not know are dropped, as Sensu Go's JSON decoding drops them, and counted;
- ``GET`` and ``PATCH`` answer with an ``ETag``; ``If-Match`` and ``If-None-Match`` make a
  ``PATCH``, a ``PUT`` or a ``DELETE`` conditional (412 when the condition fails: ``If-None-Match:
  *`` on a ``PUT`` creates only, ``If-Match`` writes only over the version read).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pipeline.backend.api.common import client_of, json_body, unknown_namespace
from pipeline.errors import ValidationError
from pipeline.http_answers import error_response
from pipeline.logs import get_logger
from pipeline.metrics import BackendMetrics
from pipeline.model.codec import encode, known_fields_only

log = get_logger("backend.api")

T = TypeVar("T")
MERGE_PATCH = "application/merge-patch+json"
API_VERSION = "core/v2"
WRAPPER_KEYS = ("type", "api_version", "metadata", "spec")
#: Characters of one ignored field's name said in the Warning header, at most.
MAX_SHOWN_NAME = 100


@dataclass(slots=True, frozen=True)
class Writable(Generic[T]):
    """How the shared write path reaches the resources of one kind."""

    #: Sensu's type name, as in a wrapped body (``CheckConfig``, ``Entity``, ``Silenced``)
    type_name: str
    #: the model class, whose fields are the ones kept from a body
    model: type
    #: (namespace, name) -> the resource, if there is one
    find: Callable[[str, str], Awaitable[T | None]]
    #: the flat document (metadata filled in) -> the resource saved; ValidationError naming the field
    save: Callable[[dict[str, Any]], Awaitable[T]]
    #: what the API answers for it (a GET's body)
    to_json: Callable[[T], dict[str, Any]] = encode
    #: the name a flat document will be saved under ("": it has none yet)
    name_of: Callable[[dict[str, Any]], str] = lambda flat: str(flat["metadata"].get("name") or "")


def etag(document: Any) -> str:
    """A strong validator of a resource's JSON: equal documents, equal tags."""
    digest = hashlib.sha256(json.dumps(document, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    return f'"{digest[:20]}"'


def with_etag(document: dict[str, Any]) -> JSONResponse:
    return JSONResponse(document, headers={"ETag": etag(document)})


def ignored_warning(ignored: list[str]) -> dict[str, str]:
    """The fields a write dropped, told to the client as Kubernetes tells its API warnings (an HTTP
    ``Warning: 299`` header, which kubectl and most HTTP libraries show), so a typo does not pass unseen."""
    if not ignored:
        return {}
    # A field's name is the client's text: a header carries only printable ASCII, so anything else
    # (a quote, a control character, a lone surrogate) is written as a JSON escape; and it is capped.
    shown = [json.dumps(name[:MAX_SHOWN_NAME], ensure_ascii=True)[1:-1] for name in ignored[:10]]
    named = ", ".join(shown) + (f" and {len(ignored) - 10} more" if len(ignored) > 10 else "")
    return {"Warning": f'299 - "unknown fields ignored: {named}"'}


def unwrap(body: Any, type_name: str) -> dict[str, Any]:
    """The flat form of a body in either form (raises ValidationError naming the field)."""
    if not isinstance(body, dict):
        raise ValidationError("", "expected a JSON object")
    if "spec" not in body:
        return dict(body)
    given = body.get("type", type_name)
    if given != type_name:
        raise ValidationError("type", f"expected {type_name!r} at this path, got {given!r}")
    version = body.get("api_version", API_VERSION)
    if version != API_VERSION:
        raise ValidationError("api_version", f"expected {API_VERSION!r}, got {version!r}")
    spec = body["spec"]
    if not isinstance(spec, dict):
        raise ValidationError("spec", "expected an object")
    return {**spec, "metadata": body.get("metadata") or {}}


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396: objects merge key by key, ``null`` removes, anything else replaces (lists too)."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


def _tags(header: str) -> set[str]:
    return {tag.strip() for tag in header.split(",") if tag.strip()}


def precondition_failed(request: Request, current: str | None) -> bool:
    """Whether ``If-Match`` or ``If-None-Match`` rule the write out, given the current ETag (None:
    there is no such resource yet, so ``If-Match`` fails and ``If-None-Match: *`` holds, RFC 9110)."""
    if (wanted := request.headers.get("if-match")) is not None:
        tags = _tags(wanted)
        if current is None or ("*" not in tags and current not in tags):
            return True
    if (unwanted := request.headers.get("if-none-match")) is not None:
        tags = _tags(unwanted)
        if current is not None and ("*" in tags or current in tags):
            return True
    return False


def conditional(request: Request) -> bool:
    return "if-match" in request.headers or "if-none-match" in request.headers


def stale(request: Request, current: dict[str, Any] | None) -> Response | None:
    """412 when the request's ``If-Match``/``If-None-Match`` rule out acting on ``current`` (the
    resource's JSON as a GET answers it, None if there is none), else None."""
    if conditional(request) and precondition_failed(request, None if current is None else etag(current)):
        return error_response(412, "the resource changed: its ETag does not match the condition")
    return None


def _place(flat: dict[str, Any], namespace: str, name: str | None) -> dict[str, Any]:
    """The URL's namespace and name in the body's metadata (raises ValidationError on a mismatch)."""
    metadata = flat.setdefault("metadata", {})
    if metadata is None:
        metadata = flat["metadata"] = {}
    if not isinstance(metadata, dict):
        raise ValidationError("metadata", "expected an object")
    for key, wanted in (("namespace", namespace), ("name", name)):
        if wanted is None:
            continue
        given = metadata.get(key) or ""
        if not given:
            metadata[key] = wanted
        elif given != wanted:
            raise ValidationError(f"metadata.{key}", f"{given!r} does not match {wanted!r} in the URL")
    return flat


class Writer:
    """The write routes' shared implementation, bound to the API's metrics."""

    def __init__(self, metrics: BackendMetrics, namespace_exists: Callable[[str], bool] = lambda name: True) -> None:
        self.metrics = metrics
        self.namespace_exists = namespace_exists

    def _known(self, kind: Writable[Any], flat: dict[str, Any], request: Request) -> tuple[dict[str, Any], list[str]]:
        kept, ignored = known_fields_only(kind.model, flat)
        if ignored:
            self.metrics.fields_ignored.inc(len(ignored))
            log.debug("unknown fields ignored", client=client_of(request), kind=kind.type_name,
                      fields=",".join(ignored[:20]))  # fmt: skip
        return kept, ignored

    async def write(self, request: Request, kind: Writable[Any], *, name_param: str = "name") -> Response:
        """``POST`` (create), ``PUT`` (create or replace) or ``PATCH`` (merge) of one resource; the
        URL names it in the path parameter ``name_param`` (the collection's URL names none)."""
        p = request.path_params
        namespace, name = p["namespace"], p.get(name_param)
        if not self.namespace_exists(namespace):
            return unknown_namespace(namespace)
        if request.method == "PATCH":
            return await self._patch(request, kind, namespace, name or "")
        body = await json_body(request)
        if isinstance(body, Response):
            return body
        try:
            flat, ignored = self._known(kind, _place(unwrap(body, kind.type_name), namespace, name), request)
            wanted = kind.name_of(flat)
            current = await kind.find(namespace, wanted) if wanted else None
            if request.method == "POST" and current is not None:
                return error_response(409, f"{kind.type_name} {wanted} already exists in namespace {namespace}")
            if (refused := stale(request, None if current is None else kind.to_json(current))) is not None:
                return refused
            saved = await kind.save(flat)
        except ValidationError as exc:
            return error_response(400, str(exc))
        return JSONResponse(kind.to_json(saved), status_code=201, headers=ignored_warning(ignored))

    async def _patch(self, request: Request, kind: Writable[Any], namespace: str, name: str) -> Response:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != MERGE_PATCH:
            return error_response(415, f"PATCH takes a JSON merge patch: Content-Type: {MERGE_PATCH}")
        current = await kind.find(namespace, name)
        if current is None:
            return error_response(404, f"{kind.type_name} {name!r} not found in namespace {namespace}")
        if (refused := stale(request, kind.to_json(current))) is not None:
            return refused
        patch = await json_body(request)
        if isinstance(patch, Response):
            return patch
        try:
            if not isinstance(patch, dict):
                raise ValidationError("", "expected a JSON object (a merge patch)")
            metadata = patch.get("metadata")
            for key, wanted in (("namespace", namespace), ("name", name)):
                if isinstance(metadata, dict) and key in metadata and metadata[key] != wanted:
                    raise ValidationError(f"metadata.{key}", "cannot be changed by PATCH; use PUT")
            known, ignored = self._known(kind, patch, request)
            saved = await kind.save(_place(merge_patch(encode(current), known), namespace, name))
        except ValidationError as exc:
            return error_response(400, str(exc))
        response = with_etag(kind.to_json(saved))
        response.headers.update(ignored_warning(ignored))
        return response

"""How the API answers a list, for every list route alike (see :mod:`pipeline.core.listing`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pipeline.core.listing import (
    CONTINUE,
    FIELD_SELECTOR,
    LABEL_SELECTOR,
    LIMIT,
    SortKey,
    page,
    parse_list_request,
    select,
)
from pipeline.errors import ValidationError
from pipeline.http_answers import error_response
from pipeline.http_params import takes_query
from pipeline.model import DEFAULT_NAMESPACE, Event

T = TypeVar("T")
#: The header of a list response that says where the next page starts, as in Sensu Go.
CONTINUE_HEADER = "Sensu-Continue"
#: The query parameters of every list route (:func:`listed` reads them; it refuses the selectors
#: on a list of no Sensu kind, naming them).
LIST_QUERY = (LABEL_SELECTOR, FIELD_SELECTOR, LIMIT, CONTINUE)
#: The declaration of a list endpoint.
takes_list_query = takes_query(*LIST_QUERY)


def listed(
    request: Request, kind: str | None, items: Sequence[T], key: Callable[[T], SortKey], to_json: Callable[[T], Any]
) -> Response:
    """A list of resources of ``kind`` answered as Sensu Go answers one: ``labelSelector`` and
    ``fieldSelector`` (not on lists of no Sensu kind: None), then ``limit`` and ``continue`` over
    a stable order with the next page's token in ``Sensu-Continue``; anything malformed or
    unknown is 400 naming it. Only what is selected, or the page, is turned into JSON."""
    try:
        wanted = parse_list_request(request.query_params, kind)
    except ValidationError as exc:
        return error_response(400, str(exc))
    if kind is None or (wanted.labels is None and wanted.fields is None):
        result = page(items, key, wanted)
        return _answer([to_json(item) for item in result.items], result.next_token)
    documents = {id(item): to_json(item) for item in items}
    result = page(select(items, lambda item: documents[id(item)], kind, wanted), key, wanted)
    return _answer([documents[id(item)] for item in result.items], result.next_token)


def _answer(documents: list[Any], next_token: str) -> Response:
    return JSONResponse(documents, headers={CONTINUE_HEADER: next_token} if next_token else None)


def event_key(event: Event) -> SortKey:
    return (event.namespace or DEFAULT_NAMESPACE, event.entity_name, event.check_name)


def named(resource: Any) -> SortKey:
    return (resource.metadata.namespace or DEFAULT_NAMESPACE, resource.metadata.name)

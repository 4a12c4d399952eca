"""Sensu Go's list parameters, one implementation for every list of the API. Pure.

``labelSelector`` and ``fieldSelector`` (:mod:`pipeline.core.selectors`, Sensu Go's grammar
and field names) narrow the list first; ``limit`` and ``continue`` then page through it in a
stable order (namespace, then name, as Sensu Go's store keys order it): a page of ``limit``
items and, when more follow, a token for the next page, which the API sends in the
``Sensu-Continue`` header. A malformed selector or parameter, and any parameter not of these
four, is refused naming it: never ignored (a client that deletes what a filtered list returned
must not be handed every resource).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pipeline.core.numbers import parse_int
from pipeline.core.selectors import Selector, matches_document, parse_field_selector, parse_label_selector
from pipeline.errors import ValidationError
from pipeline.model.codec import load_json

T = TypeVar("T")

#: The parameters Sensu Go's list endpoints take.
LIMIT, CONTINUE, LABEL_SELECTOR, FIELD_SELECTOR = "limit", "continue", "labelSelector", "fieldSelector"
#: The largest page a client may ask for (Sensu Go sets no bound; a page must fit a response).
MAX_LIMIT = 100_000

#: The longest ``continue`` token this backend gives is far shorter.
MAX_TOKEN = 4096
#: A position in the list's order: the sort key of the last item of the previous page.
SortKey = tuple[str, ...]


@dataclass(slots=True, frozen=True)
class ListRequest:
    limit: int = 0  # 0: the whole list, as in Sensu Go
    after: SortKey | None = None
    labels: Selector | None = None
    fields: Selector | None = None


@dataclass(slots=True, frozen=True)
class Page:
    items: list[Any]
    #: the token of the next page ("" when this is the last)
    next_token: str


def parse_list_request(params: Mapping[str, str], kind: str | None) -> ListRequest:
    """What a list request of resources of ``kind`` asks for; ValidationError (SelectorError for a
    selector) naming a parameter that is malformed or unknown. A list of no Sensu kind (None:
    dead letters) has no selectors."""
    for name in params:
        if name not in (LIMIT, CONTINUE, LABEL_SELECTOR, FIELD_SELECTOR):
            raise ValidationError(name, "unknown query parameter")
        if kind is None and name in (LABEL_SELECTOR, FIELD_SELECTOR):
            raise ValidationError(name, "this list has no selectors")
    limit = 0
    if LIMIT in params:
        parsed = parse_int(params[LIMIT], (0, MAX_LIMIT))
        if parsed is None:
            raise ValidationError(LIMIT, f"expected an integer from 0 to {MAX_LIMIT}, got {params[LIMIT][:40]!r}")
        limit = parsed
    after = decode_token(params[CONTINUE]) if params.get(CONTINUE) else None
    labels = parse_label_selector(params[LABEL_SELECTOR]) if LABEL_SELECTOR in params else None
    fields = parse_field_selector(params[FIELD_SELECTOR], kind) if kind and FIELD_SELECTOR in params else None
    return ListRequest(limit, after, labels, fields)


def select(documents: Sequence[T], document: Callable[[T], Mapping[str, Any]], kind: str,
           request: ListRequest) -> list[T]:  # fmt: skip
    """The items whose Sensu JSON (``document(item)``) both selectors of ``request`` match."""
    if request.labels is None and request.fields is None:
        return list(documents)
    return [item for item in documents
            if matches_document(kind, document(item), labels=request.labels, fields=request.fields)]  # fmt: skip


def page(items: Sequence[T], key: Callable[[T], SortKey], request: ListRequest) -> Page:
    """The page of ``items`` (in any order) that ``request`` asks for, in the order of ``key``."""
    ordered = sorted(items, key=key)
    if request.after is not None:
        ordered = [item for item in ordered if key(item) > request.after]
    if not request.limit or len(ordered) <= request.limit:
        return Page(list(ordered), "")
    chosen = ordered[: request.limit]
    return Page(list(chosen), encode_token(key(chosen[-1])))


def encode_token(after: SortKey) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(after)).encode()).decode()


def decode_token(token: str) -> SortKey:
    """The position a ``continue`` token stands for; ValidationError naming ``continue``."""
    after: Any = None
    if len(token) <= MAX_TOKEN:
        try:
            after = load_json(base64.urlsafe_b64decode(token.encode("ascii")))  # strict: nesting bounded
        except (ValidationError, ValueError, UnicodeError, binascii.Error):
            after = None
    if not isinstance(after, list) or not after or not all(isinstance(part, str) for part in after):
        raise ValidationError(CONTINUE, f"not a token this backend gave: {token[:40]!r}")
    return tuple(after)

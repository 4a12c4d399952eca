"""Sensu Go's list parameters, one implementation for every list of the API. Pure.

``limit`` and ``continue`` page through a list in a stable order (namespace, then name, as
Sensu Go's store keys order it): a page of ``limit`` items and, when more follow, a token for
the next page, which the API sends in the ``Sensu-Continue`` header. ``labelSelector`` and
``fieldSelector`` narrow the list (:mod:`pipeline.core.selectors` when it is there; until then
they are refused, never ignored: a client that deletes what a filtered list returned must not
be handed every resource). Any other parameter is refused naming it.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pipeline.core.numbers import parse_int
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


class UnsupportedParameter(ValidationError):
    """A list parameter pipeline knows but does not act on yet (answered 501, never ignored)."""


@dataclass(slots=True, frozen=True)
class ListRequest:
    limit: int = 0  # 0: the whole list, as in Sensu Go
    after: SortKey | None = None


@dataclass(slots=True, frozen=True)
class Page:
    items: list[Any]
    #: the token of the next page ("" when this is the last)
    next_token: str


def parse_list_request(params: Mapping[str, str], extra: Sequence[str] = ()) -> ListRequest:
    """The paging a list request asks for; ValidationError naming a parameter that is malformed
    or unknown (``extra``: the route's own, such as none today), UnsupportedParameter for a
    selector."""
    for name in params:
        if name in (LABEL_SELECTOR, FIELD_SELECTOR):
            raise UnsupportedParameter(name, "selectors are not supported yet: the list would not be filtered")
        if name not in (LIMIT, CONTINUE, *extra):
            raise ValidationError(name, "unknown query parameter")
    limit = 0
    if LIMIT in params:
        parsed = parse_int(params[LIMIT], (0, MAX_LIMIT))
        if parsed is None:
            raise ValidationError(LIMIT, f"expected an integer from 0 to {MAX_LIMIT}, got {params[LIMIT][:40]!r}")
        limit = parsed
    after = decode_token(params[CONTINUE]) if params.get(CONTINUE) else None
    return ListRequest(limit, after)


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

"""Which query parameters each HTTP route takes, and the refusal of every other one.

An endpoint declares what it reads with :func:`takes_query` (``@takes_query("since", "until")``);
an endpoint that declares nothing takes no parameter at all. :func:`guarded` rebuilds a list of
routes so that a request naming any other parameter is answered 400 in Sensu Go's error shape,
naming it and what the path takes (``entitty: unknown query parameter (this path takes: since,
until, entity, type, limit, continue)``), counted, and never reaches the endpoint: a misspelt
filter (``?entitty=web1``) must not quietly return everything. Sensu Go ignores unknown parameters;
pipeline does not (README, "Where pipeline differs from Sensu Go").

The one exception is :func:`takes_any_query`, for other products' wire formats whose clients
may send parameters pipeline has never heard of (the push formats). Shared by the backend's and
the agent's apps; it knows nothing of either.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from pipeline.errors import UnknownQueryParameter
from pipeline.http_answers import error_response
from pipeline.logs import get_logger

log = get_logger("http.params")

F = TypeVar("F", bound=Callable[..., Any])
_DECLARED = "_pipeline_query_parameters"
#: Declared by :func:`takes_any_query`: every parameter reaches the endpoint.
ANY = "*"


def takes_query(*names: str) -> Callable[[F], F]:
    """Mark an endpoint as reading these query parameters (and no others)."""

    def mark(endpoint: F) -> F:
        setattr(endpoint, _DECLARED, tuple(names))
        return endpoint

    return mark


def takes_any_query(why: str) -> Callable[[F], F]:
    """Mark an endpoint as taking any query parameter; ``why`` is for the reader (another
    product's wire format whose clients send what they like)."""
    if not why.strip():
        raise ValueError("takes_any_query: say why this endpoint takes any parameter")

    def mark(endpoint: F) -> F:
        setattr(endpoint, _DECLARED, ANY)
        return endpoint

    return mark


def declared(endpoint: Callable[..., Any]) -> tuple[str, ...] | str:
    """What ``endpoint`` declared: the names it takes (none by default), or :data:`ANY`."""
    found: tuple[str, ...] | str = getattr(endpoint, _DECLARED, ())
    return found


def refusal(params: Iterable[str], takes: tuple[str, ...]) -> UnknownQueryParameter | None:
    """The refusal of the first parameter not in ``takes``, or None when there is none."""
    unknown = next((name for name in params if name not in takes), None)
    return None if unknown is None else UnknownQueryParameter(unknown, takes)


#: Told the route's path template of every refusal (a Prometheus counter's ``labels(path).inc``).
Refused = Callable[[str], None]


def _guard(route: Route, takes: tuple[str, ...], refused: Refused) -> Route:
    endpoint = route.endpoint

    @functools.wraps(endpoint)  # keeps its name and its declaration, for whoever reads the app's routes
    async def checked(request: Request) -> Response:
        unknown = refusal(request.query_params.keys(), takes)
        if unknown is None:
            response: Response = await endpoint(request)
            return response
        refused(route.path)
        client = f"{request.client.host}:{request.client.port}" if request.client else "unknown"
        log.info("request refused: unknown query parameter", path=route.path, method=request.method, client=client,
                 parameter=unknown.path)  # fmt: skip
        return error_response(400, str(unknown))

    return Route(route.path, checked, methods=route.methods, name=route.name, include_in_schema=route.include_in_schema)


def guarded(routes: Iterable[BaseRoute], refused: Refused) -> list[BaseRoute]:
    """``routes`` with each endpoint behind its declaration (:func:`takes_query`); routes of
    other kinds (mounts) pass as they are."""
    result: list[BaseRoute] = []
    for route in routes:
        takes = declared(route.endpoint) if isinstance(route, Route) else ANY
        if isinstance(route, Route) and takes != ANY:
            result.append(_guard(route, tuple(takes), refused))
        else:
            result.append(route)
    return result

"""The backend's HTTP API, one module per family of routes (Sensu Go's core/v2 kinds, pipeline's
own), over one implementation of listing (:mod:`.lists`) and of errors
(:mod:`pipeline.http_answers`). Each family is a function from what it needs to its routes;
:func:`create_app` mounts the families it is given, in order.

Every endpoint declares the query parameters it reads (:func:`pipeline.http_params.takes_query`;
none by default): :func:`create_app` puts each route behind its declaration, so that any other
parameter is answered 400 naming it instead of being ignored."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.applications import Starlette
from starlette.routing import BaseRoute

from pipeline.http_answers import EXCEPTION_HANDLERS
from pipeline.http_params import Refused, guarded


def _uncounted(path: str) -> None:
    pass


def create_app(*families: Sequence[BaseRoute], refused: Refused = _uncounted) -> Starlette:
    """An app of these route families, matched in the order given: fixed paths must come before
    the families whose paths have a catch-all segment (the configured kinds' ``{kind}``, the push
    formats' two-segment paths). ``refused`` is told the route of each request refused for an
    unknown query parameter (the backend counts them in ``pipeline_api_unknown_parameters``)."""
    routes = guarded((route for family in families for route in family), refused)
    return Starlette(routes=routes, exception_handlers=EXCEPTION_HANDLERS)


__all__ = ["create_app"]

"""The backend's HTTP API, one module per family of routes (Sensu Go's core/v2 kinds, pipeline's
own), over one implementation of listing (:mod:`.lists`) and of errors
(:mod:`pipeline.http_answers`). Each family is a function from what it needs to its routes;
:func:`create_app` mounts the families it is given, in order."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.applications import Starlette
from starlette.routing import BaseRoute

from pipeline.http_answers import EXCEPTION_HANDLERS


def create_app(*families: Sequence[BaseRoute]) -> Starlette:
    """An app of these route families, matched in the order given: fixed paths must come before
    the families whose paths have a catch-all segment (the configured kinds' ``{kind}``, the push
    formats' two-segment paths)."""
    return Starlette(routes=[route for family in families for route in family], exception_handlers=EXCEPTION_HANDLERS)


__all__ = ["create_app"]

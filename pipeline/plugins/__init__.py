"""In-process handler plugins, and how the backend finds, loads and validates them.

A handler of ``type: plugin`` names its plugin in ``spec.plugin``: ``module:attribute`` or an
entry point name of the group ``pipeline.handlers``. The attribute is a factory (usually a
class) called once at startup with ``spec.options`` (a mapping); what it returns must have
``async def handle(self, event: Event) -> None``, which raises to report a failure. A plugin
that cannot be found, loaded or built stops the backend with an error naming it.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any, Protocol

from pipeline.errors import HandlerError
from pipeline.model import Event

ENTRY_POINT_GROUP = "pipeline.handlers"


class HandlerPlugin(Protocol):
    async def handle(self, event: Event) -> None: ...


def find(reference: str) -> Any:
    """The factory a plugin reference names (``module:attr`` or an entry point name)."""
    if ":" not in reference:
        matches = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == reference]
        if not matches:
            raise HandlerError(f"plugin {reference!r}: no entry point of that name in group {ENTRY_POINT_GROUP!r}")
        reference = matches[0].value
    module_name, _, attribute = reference.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise HandlerError(f"plugin {reference!r}: cannot import {module_name!r}: {exc}") from None
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise HandlerError(f"plugin {reference!r}: {module_name!r} has no {attribute!r}") from None


def load(reference: str, options: Mapping[str, Any]) -> HandlerPlugin:
    """Find, build and validate a plugin; every failure is a HandlerError naming it."""
    factory = find(reference)
    try:
        plugin = factory(dict(options))
    except Exception as exc:  # a plugin's own validation of its options
        raise HandlerError(f"plugin {reference!r}: {exc}") from None
    handle = getattr(plugin, "handle", None)
    if not inspect.iscoroutinefunction(handle):
        raise HandlerError(f"plugin {reference!r}: {type(plugin).__name__} has no 'async def handle(self, event)'")
    return plugin  # type: ignore[no-any-return]

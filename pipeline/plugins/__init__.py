"""In-process handler plugins, and how the backend finds, loads and validates them.

A handler of ``type: plugin`` names its plugin in ``spec.plugin``: ``module:attribute`` or an
entry point name of the group ``pipeline.handlers``. The attribute is a factory (usually a
class) called once at startup with ``spec.options`` (a mapping); what it returns must have
``async def handle(self, event: Event) -> None``, which raises to report a failure. A plugin
that cannot be found, loaded or built stops the backend with an error naming it.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import sys
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import Any, Protocol

import trio

from pipeline.errors import HandlerError, ValidationError
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


def run_pipe_program(
    parser: argparse.ArgumentParser,
    factory: Callable[[dict[str, Any]], HandlerPlugin],
    options: dict[str, Any],
    *,
    failures: tuple[type[BaseException], ...] = (HandlerError,),
    done: Callable[[Event], str] | None = None,
) -> int:
    """A plugin as a pipe handler: build it from flags (a bad one is a usage error), read one event
    as JSON on stdin (exit 2 when it is not one), handle it (exit 1, the reason on stderr, on one of
    ``failures``), and say what was done."""
    name = parser.prog
    try:
        handler = factory(options)
    except (ValueError, ValidationError) as exc:
        parser.error(str(exc))
    try:
        event = Event.from_json(sys.stdin.buffer.read(), allow_nan=True)  # the backend writes NaN points
    except ValidationError as exc:
        print(f"{name}: stdin is not a Sensu event: {exc}", file=sys.stderr)
        return 2
    try:
        trio.run(handler.handle, event)
    except failures as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 1
    if done is not None:
        print(f"{name}: {done(event)}")
    return 0

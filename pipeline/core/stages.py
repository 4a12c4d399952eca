"""The three stages of a workflow, filter -> mutator -> handler, each behind one small protocol.

As in Sensu Go's pipeline (``FilterAdapter``, ``MutatorAdapter``, ``HandlerAdapter``), a stage
is done by the first adapter in its list that says it can: ``can_filter(ref)``,
``can_mutate(ref)``, ``can_handle(handler)``. Built-in filters and mutators, EventFilter
expressions, template and pipe mutators, pipe, socket and in-process plugin handlers are all
adapters, peers of any added later. The lists, and how to add an adapter, are in
:mod:`pipeline.backend.stages`. Every adapter takes the event as :class:`EventForms`, so that
the event is encoded once per form, whatever the number of stages.

Pure: no I/O here; the protocols' ``async`` methods are only signatures.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from pipeline.core.js import Libraries
from pipeline.model.forms import EventForms
from pipeline.model.resources import Handler


@dataclass(slots=True, frozen=True)
class StageRef:
    """What a workflow names for a filter or a mutator: its name, in the event's namespace."""

    name: str
    namespace: str


@dataclass(slots=True)
class FilterOutcome:
    """A filter's verdict: whether the event goes on, and the expressions that failed (each
    skipped, as Sensu Go skips them, and reported with its error)."""

    passed: bool
    errors: list[str] = field(default_factory=list)


@dataclass(slots=True, frozen=True)
class LoadedLibraries:
    """The JavaScript of a filter's or mutator's ``runtime_assets``; ``error`` says why they could
    not be had (Sensu Go then runs the filter without any)."""

    libraries: Libraries = ()
    error: str = ""


#: ``(runtime_assets, namespace) -> LoadedLibraries``: what the runner lends the JavaScript stages
LibraryLoader = Callable[[list[str], str], Awaitable[LoadedLibraries]]


async def no_libraries(runtime_assets: list[str], namespace: str) -> LoadedLibraries:
    """A loader for where no asset can be had (tests, ``pipeline validate``)."""
    if runtime_assets:
        return LoadedLibraries(error=f"runtime assets are not available here: {', '.join(runtime_assets)}")
    return LoadedLibraries()


class StageError(Exception):
    """A mutator or handler failed; ``reason`` labels the metric, the message says what happened."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


@dataclass(slots=True, frozen=True)
class HandlerRun:
    """What one attempt of a handler did, for the log."""

    status: int
    output: str


class FilterAdapter(Protocol):
    """Decides whether an event goes on. ``filter`` raises FilterError (pipeline.core.filtering)
    when the filter cannot be applied at all (the workflow stops, the error is counted)."""

    def can_filter(self, ref: StageRef) -> bool: ...

    async def filter(self, ref: StageRef, forms: EventForms, now: float) -> FilterOutcome: ...


class MutatorAdapter(Protocol):
    """Turns an event into the bytes its handler takes; raises StageError when it cannot."""

    def can_mutate(self, ref: StageRef) -> bool: ...

    async def mutate(self, ref: StageRef, forms: EventForms) -> bytes: ...


class HandlerAdapter(Protocol):
    """Does something with an event; raises StageError on a failure (the runner retries it).

    ``mutated`` says whether its handlers take the mutator's bytes (``payload``); when False
    (in-process plugins take the event itself) no mutator runs and ``payload`` is empty."""

    mutated: bool

    def can_handle(self, handler: Handler) -> bool: ...

    async def handle(self, handler: Handler, forms: EventForms, payload: bytes) -> HandlerRun: ...

"""One event in the forms the backend pipeline's stages take, each computed at most once.

A filter expression reads the event as its Sensu JSON dict, a template mutator renders that
dict, the ``json`` mutator and a pipe mutator write the JSON bytes, a plugin handler takes the
model. Built per stage, an event going through three filters and three handlers was encoded
six times; an :class:`EventForms` is made once per event and passed along, and each form is
computed on first use. The forms are read-only by contract: a stage that wants to change the
dict copies it (the template and expression sandboxes cannot change it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pipeline.model.event import Event, event_json

T = TypeVar("T")


class EventForms:
    """The model, its Sensu JSON dict (:attr:`data`) and its JSON bytes (:attr:`json`)."""

    __slots__ = ("_data", "_json", "_memo", "event")

    def __init__(self, event: Event) -> None:
        self.event = event
        self._data: dict[str, Any] | None = None
        self._json: bytes | None = None
        self._memo: dict[str, Any] = {}

    def memo(self, key: str, make: Callable[[], T]) -> T:
        """Another form of the event, made by ``make`` on first use under ``key`` (the filters'
        synthesized event, say), so that every stage after the first shares it."""
        if key not in self._memo:
            self._memo[key] = make()
        found: T = self._memo[key]
        return found

    @property
    def data(self) -> dict[str, Any]:
        """The event as Sensu Go's v2 JSON dict (``Event.to_dict``), encoded on first use."""
        if self._data is None:
            self._data = self.event.to_dict()
        return self._data

    @property
    def json(self) -> bytes:
        """The event as JSON bytes, exactly as ``Event.to_json`` writes them, on first use."""
        if self._json is None:
            self._json = event_json(self.event, self.data)
        return self._json

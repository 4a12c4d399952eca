"""The event as Sensu Go shows it to filter expressions (``dynamic.Synthesize``), as JSON text.

What Sensu Go does (sensu-go ``dynamic/dynamic.go`` ``Synthesize``, ``backend/pipeline/filter/
legacy.go`` ``evaluateEventFilter``, core/v2 ``Event.SynthesizeExtras``) and so what this does:

- every field is there, empty ones too (Synthesize ignores ``omitempty``): ``event.check.output``
  is ``""`` and ``event.check.silenced`` is ``[]``, never undefined; an absent check, entity or
  metrics is ``null``;
- the ``metadata`` of the event, the entity, the check and each hook is also lifted onto the object
  itself: ``event.check.name``, ``event.entity.labels``, ``event.namespace``; ``labels`` and
  ``annotations`` are ``{}`` when there are none, so ``event.entity.labels.environment`` is
  ``undefined`` for an unlabelled entity, not an error;
- the event gets ``has_check``, ``has_metrics``, ``is_incident``, ``is_resolution``,
  ``is_silenced``, ``is_flapping_start`` and ``is_flapping_end``.

Differences, on purpose: ``event.id`` is the UUID string (Sensu Go shows its 16 bytes as an array
of numbers); a metric value that is not finite is ``null`` (JSON has no NaN).

An expression that names the event only through fixed paths (``event.check.status``) gets only
the parts of the event those paths reach (:func:`event_paths`, :func:`prune`): the same answers,
without parsing 3.6 KB of JSON per evaluation for three numbers.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import types
import typing
from collections.abc import Mapping
from typing import Any

from pipeline.model import Event

_META_KEYS = ("name", "namespace", "labels", "annotations", "created_by")
# how a field's value becomes JSON: as it is (str, int, bool, a dict or list of those: shared, as
# nothing here or after changes them), a record, a list of records, a float, or anything (JSON)
_SAME, _RECORD, _RECORDS, _FLOAT, _ANY = range(5)
_Plan = tuple[tuple[str, str, int], ...]
_PLANS: dict[type, _Plan] = {}


def _kind(tp: Any) -> int:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _kind(inner[0]) if len(inner) == 1 else _ANY
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _RECORD
    if origin is list:
        item = args[0] if args else Any
        if isinstance(item, type) and dataclasses.is_dataclass(item):
            return _RECORDS
        return _SAME if item in (str, int, bool) else _ANY
    if origin is dict:
        return _SAME if args and args[1] in (str, int, bool) else _ANY
    if tp is float:
        return _FLOAT
    return _SAME if tp in (str, int, bool) else _ANY


def _plan(cls: type) -> _Plan:
    plan = _PLANS.get(cls)
    if plan is None:
        hints = typing.get_type_hints(cls)
        plan = _PLANS[cls] = tuple(
            (f.metadata.get("key") or f.name, f.name, _kind(hints[f.name])) for f in dataclasses.fields(cls)
        )
    return plan


def _any(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _record(value)
    if isinstance(value, list):
        return [_any(item) for item in value]
    if isinstance(value, dict):
        return {key: _any(item) for key, item in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _record(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, attr, kind in _plan(type(obj)):
        value = getattr(obj, attr)
        if kind == _SAME or value is None:
            out[key] = value
        elif kind == _RECORD:
            out[key] = _record(value)
        else:
            out[key] = _convert(value, kind)
    meta = out.get("metadata")
    if meta is not None:
        for key in _META_KEYS:
            out[key] = meta[key]
    return out


def _extras(event: Event) -> dict[str, bool]:
    check = event.check
    return {
        "has_check": event.has_check,
        "has_metrics": event.has_metrics,
        "is_incident": event.is_incident,
        "is_resolution": event.is_resolution,
        "is_silenced": event.is_silenced,
        "is_flapping_start": check is not None and check.is_flapping_start,
        "is_flapping_end": check is not None and check.is_flapping_end,
    }


def synthesize(event: Event) -> dict[str, Any]:
    """The event as Sensu Go's filters see it (see the module's docstring)."""
    out = _record(event)
    out.update(_extras(event))
    return out


class FilterInput:
    """One event, made ready for any number of filter evaluations: what each expression reads is
    synthesized from the event when asked for, the whole synthesized event at most once."""

    __slots__ = ("_synthesized", "event")

    def __init__(self, event: Event) -> None:
        self.event = event
        self._synthesized: dict[str, Any] | None = None

    @property
    def synthesized(self) -> dict[str, Any]:
        if self._synthesized is None:
            self._synthesized = synthesize(self.event)
        return self._synthesized

    def json(self, tree: Reads | None = None) -> str:
        """The synthesized event as JSON, or only what ``tree`` (see :func:`reads`) reaches."""
        if tree is None:
            value = self.synthesized
        elif self._synthesized is not None:
            value = prune(self._synthesized, tree)
        else:
            value = _pick_event(self.event, tree)
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def filter_input(event: Event | Mapping[str, Any] | FilterInput) -> FilterInput:
    """An Event, or its Sensu JSON as a dict (fields pipeline does not know are ignored, as
    Sensu Go's API ignores them), ready for :meth:`JsFilter.evaluate`."""
    if isinstance(event, FilterInput):
        return event
    if not isinstance(event, Event):
        event = Event.from_dict(dict(event), ignored=[])
    return FilterInput(event)


_EXTRA_KEYS = frozenset(
    ("has_check", "has_metrics", "is_incident", "is_resolution", "is_silenced", "is_flapping_start", "is_flapping_end")
)


def _pick_event(event: Event, tree: Reads) -> Any:
    """prune(synthesize(event), tree), synthesizing only what ``tree`` reaches."""
    extras = [key for key in tree if key in _EXTRA_KEYS]
    rest = {key: sub for key, sub in tree.items() if key not in _EXTRA_KEYS}
    if not all(_has(event, key) for key in rest):
        return synthesize(event)  # a key it does not have: all of it, as prune does
    picked = _pick(event, rest)
    if extras:
        computed = _extras(event)
        picked.update((key, computed[key]) for key in extras)
    return picked


def _has(obj: Any, key: str) -> bool:
    keys = _keys(type(obj))
    return key in keys or (key in _META_KEYS and "metadata" in keys)


_KEYS: dict[type, dict[str, tuple[str, int]]] = {}


def _keys(cls: type) -> dict[str, tuple[str, int]]:
    keys = _KEYS.get(cls)
    if keys is None:
        keys = _KEYS[cls] = {key: (attr, kind) for key, attr, kind in _plan(cls)}
    return keys


def _pick(obj: Any, tree: Reads) -> Any:
    """prune(_record(obj), tree), synthesizing only what ``tree`` reaches."""
    if not all(_has(obj, key) for key in tree):
        return _record(obj)
    keys = _keys(type(obj))
    out: dict[str, Any] = {}
    for key, sub in tree.items():
        if key in keys:
            attr, kind = keys[key]
            value = getattr(obj, attr)
        else:  # a metadata field, lifted
            value, kind = getattr(obj.metadata, key), _SAME
        if value is None or kind == _SAME:
            out[key] = prune(value, sub)
        elif kind == _RECORD:
            out[key] = _record(value) if sub is None else _pick(value, sub)
        else:
            out[key] = prune(_convert(value, kind), sub)
    return out


def _convert(value: Any, kind: int) -> Any:
    if kind == _RECORDS:
        return [_record(item) for item in value]
    if kind == _FLOAT:
        return value if math.isfinite(value) else None
    return _any(value)


# -- pruning -----------------------------------------------------------------------------------

_EVENT_WORD = re.compile(r"\bevent\b")
_PATH = re.compile(r"event((?:\.[A-Za-z_$][\w$]*)+)")
# ways to reach the global `event` other than by its name: with any of them, send it all
_ESCAPES = re.compile(
    r"eval|Function|this|globalThis|with|constructor|__proto__|arguments|Reflect|Proxy|import|\\u|\\x"
)


def event_paths(source: str) -> tuple[tuple[str, ...], ...] | None:
    """The fixed property paths by which ``source`` reads ``event``, or None when it may read it
    any other way (``event`` alone or with ``[...]``, a name in a string, ``this``, ``eval``...),
    in which case it gets the whole event. Over-approximates: a path in a comment or a string
    only adds to what is sent."""
    if _ESCAPES.search(source):
        return None
    paths = []
    for word in _EVENT_WORD.finditer(source):
        match = _PATH.match(source, word.start())
        if match is None:
            return None
        paths.append(tuple(match.group(1)[1:].split(".")))
    return tuple(sorted(set(paths))) if paths else None


#: what of the event an expression reads: key -> what of that value (None: all of it)
Reads = dict[str, "Reads | None"]


def reads(paths: tuple[tuple[str, ...], ...]) -> Reads | None:
    """The paths as a tree; None when one of them is the whole event."""
    tree: Reads = {}
    for path in paths:
        if not path:
            return None
        node: Reads | None = tree
        for i, key in enumerate(path):
            assert node is not None
            if i == len(path) - 1:
                node[key] = None  # all of it, whatever longer paths said
            elif key in node:
                node = node[key]
                if node is None:
                    break  # a shorter path already takes all of it
            else:
                child: Reads = {}
                node[key] = child
                node = child
    return tree


def prune(value: Any, tree: Reads | None) -> Any:
    """``value`` with only what ``tree`` reaches. A path that ends, meets something that is not an
    object, or names a key the object does not have (``hasOwnProperty``, a missing label) keeps
    the whole value there, so every path reads exactly what it would read in the whole event."""
    if tree is None or type(value) is not dict:
        return value
    for key in tree:
        if key not in value:
            return value
    return {key: prune(value[key], sub) for key, sub in tree.items()}

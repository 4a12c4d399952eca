"""A Sensu 1.x check result, as local programs write it to the agent's socket (port 3030),
made into a Sensu v2 event of the agent's entity. Pure: the time is a parameter.

Fields: ``name`` and ``output`` (required), ``status`` (default 0), ``source`` or ``client``
(a proxy entity when it differs from the agent's name), ``executed``, ``duration``,
``command``, ``interval``, ``issued``, ``handlers`` or ``handler``, ``ttl``, ``subscribers``.
Other fields, custom attributes of 1.x clients, are ignored. As Sensu Go's socket does,
``executed`` is now only when the result leaves it at 0, and ``issued`` is kept as given.

The event's entity is the agent's own object, not a copy (as the local API's events): the agent
packs it once for all of them, and nothing downstream changes it.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from pipeline.errors import ValidationError
from pipeline.model import Check, Entity, Event, ObjectMeta, new_event_id
from pipeline.model.codec import Bounds, load_json, out_of_range

_PING = re.compile(rb"\A\s*ping\s*\Z")


def is_ping(data: bytes) -> bool:
    return bool(_PING.match(data))


_EXPECTED = {int: "integer", str: "string", list: "list"}


def _field(result: dict[str, Any], name: str, kind: type, default: Any) -> Any:
    """``result[name]`` if it is a ``kind`` (a number for ``float``), else a ValidationError."""
    value = result.get(name, default)
    if type(value) is kind:  # nearly always (a bool is not an int here): the checks below cost more
        return value
    if value is None:
        return default
    allowed: tuple[type, ...] = (int, float) if kind is float else (kind,)
    if isinstance(value, bool) or not isinstance(value, allowed):
        expected = _EXPECTED.get(kind, "number")
        raise ValidationError(name, f"expected {expected}, got {type(value).__name__} {value!r}")
    return value


#: The integer fields a result sets, in the check's field order (the first out of range is
#: named), with their ranges: all a result can put out of range, so all :func:`_check_ranges`
#: looks at (walking the whole event cost most of the parse).
_RANGED: tuple[tuple[str, Bounds], ...] = tuple(
    (f.name, f.metadata["bounds"])
    for f in dataclasses.fields(Check)
    if f.name in {"status", "interval", "ttl", "executed", "issued"}
)


def _check_ranges(check: Check) -> None:
    for name, bounds in _RANGED:
        value = getattr(check, name)
        if not bounds[0] <= value <= bounds[1]:
            raise out_of_range(value, bounds, f"check.{name}")


def parse_legacy_result(data: bytes, agent: Entity, now: float) -> Event:
    """The event of one check result (raises ValidationError naming the field)."""
    return legacy_event(load_json(data), agent, now)


def legacy_event(result: Any, agent: Entity, now: float) -> Event:
    """The event of one check result already parsed from JSON (:func:`parse_legacy_result`)."""
    if not isinstance(result, dict):
        raise ValidationError("", f"expected a JSON object, got {type(result).__name__}")
    name = _field(result, "name", str, "")
    if not name:
        raise ValidationError("name", "required")
    if "output" not in result:
        raise ValidationError("output", "required")
    output = _field(result, "output", str, "")
    handlers = list(_field(result, "handlers", list, []))
    handler = _field(result, "handler", str, "")
    if handler and handler not in handlers:
        handlers.append(handler)
    if not all(isinstance(h, str) for h in handlers):
        raise ValidationError("handlers", "expected a list of strings")
    source = _field(result, "source", str, "") or _field(result, "client", str, "")
    namespace = agent.metadata.namespace
    check = Check(
        metadata=ObjectMeta(name=name, namespace=namespace),
        status=_field(result, "status", int, 0),
        output=output,
        command=_field(result, "command", str, ""),
        interval=_field(result, "interval", int, 0) or 1,
        ttl=_field(result, "ttl", int, 0),
        executed=_field(result, "executed", int, 0) or int(now),
        issued=_field(result, "issued", int, 0),  # kept as given, 0 included (Sensu Go's socket)
        duration=float(_field(result, "duration", float, 0.0)),
        handlers=handlers,
        subscriptions=list(_field(result, "subscribers", list, [])),
        proxy_entity_name=source if source and source != agent.metadata.name else "",
        processed_by=agent.metadata.name,
    )
    if check.status < 0:
        raise ValidationError("status", f"must not be negative, got {check.status}")
    _check_ranges(check)  # built here, not decoded: nothing else checked its numbers
    event = Event(timestamp=int(now), entity=agent, check=check, metadata=ObjectMeta(namespace=namespace),
                  id=new_event_id())  # fmt: skip
    event.validate(entity_validated=True)  # the agent's own: validated as the agent started
    return event

"""Sematext's Events API: ``POST /<token>/event`` (one) and ``/<token>/events`` (several).

| Sematext field | our event |
|---|---|
| host (or hostname) | the entity (a proxy entity), else the pushing client's host |
| type, else name | the check name (``server_start``, ``deployment``) |
| message (required) | ``check.output`` |
| severity, else priority | ``check.status``: info/normal/low 0, warning 1, error/critical/high 2 |
| timestamp (ISO-8601) | ``check.executed`` and ``timestamp`` (default now) |
| tags | ``check.metadata.labels`` (``k:v``, ``k=v``, or a bare tag as ``tag: "true"``) |
| name, creator, priority, severity, data | ``check.metadata.annotations`` (data as JSON text) |

Fields Sematext does not define are ignored, as Sematext ignores them.
"""

from __future__ import annotations

from typing import Any

from pipeline.core.push.common import (
    PushContext,
    change_event,
    checked,
    iso_timestamp,
    labels_of,
    status_of,
    text_of,
)
from pipeline.errors import ValidationError
from pipeline.model import Event
from pipeline.model.codec import load_json

ANNOTATED = ("name", "creator", "priority", "severity", "data")


def event_from(item: Any, path: str, context: PushContext) -> Event:
    def at(name: str) -> str:
        return f"{path}.{name}" if path else name

    if not isinstance(item, dict):
        raise ValidationError(path, "expected a JSON object")
    message = item.get("message")
    if not isinstance(message, str) or not message.strip():
        raise ValidationError(at("message"), "required: the text of the event")
    host = item.get("host") or item.get("hostname") or context.default_host
    if not isinstance(host, str):
        raise ValidationError(at("host"), f"expected a string, got {host!r}")
    kind = item.get("type") or item.get("name") or "event"
    if not isinstance(kind, str):
        raise ValidationError(at("type"), f"expected a string, got {kind!r}")
    annotations = {f"sematext/{key}": text_of(item[key]) for key in ANNOTATED if item.get(key) is not None}
    return change_event(
        host=host,
        name=kind,
        output=message,
        status=status_of(item.get("severity"), item.get("priority")),
        timestamp=iso_timestamp(item.get("timestamp"), at("timestamp"), context.now),
        namespace=context.namespace,
        labels=labels_of(item.get("tags"), at("tags")),
        annotations=annotations,
        handlers=context.handlers,
    )


def parse(body: bytes, context: PushContext, *, many: bool) -> list[Event]:
    """The events of a Sematext body: one object, or (``many``) a list of them or one object.
    Raises ValidationError naming the field."""
    data = load_json(body)
    if many and isinstance(data, list):
        return checked([event_from(item, f"[{i}]", context) for i, item in enumerate(data)])
    return checked([event_from(data, "", context)])

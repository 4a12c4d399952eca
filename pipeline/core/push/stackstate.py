"""StackState's receiver intake: ``POST /stsAgent/intake?api_key=<key>`` (also under ``/receiver``).

One JSON object: ``collection_timestamp`` (seconds), ``internalHostname``, ``events`` (a map
from event name to a list of events), ``metrics``, ``service_checks`` (``topologies`` and
``health`` are accepted and ignored).

- An event of ``events[name]`` becomes a change event: check ``name``; entity
  ``internalHostname`` (a proxy entity); output ``msg_text`` (required); status from
  ``alert_type`` or ``priority`` (info 0, warning 1, error 2; else 0); executed at its
  ``timestamp`` (else ``collection_timestamp``); labels from ``tags``; annotations
  ``stackstate/msg_title`` (required), ``event_type``, ``source_type_name`` and the
  ``context`` fields (category, source, data, element_identifiers, source_links).
- ``metrics`` (``[name, timestamp, value, {hostname, tags, type}]``) become metric points,
  one metrics event per host, tags ``k:v`` as point tags.
- ``service_checks`` (``{name, status, host_name, message, timestamp, tags}``) become check
  results (not changes), status 0 to 3 as given.

Event names that start with StackState's reserved prefixes are refused, naming the event.
"""

from __future__ import annotations

from typing import Any

from pipeline.core.push.common import (
    PushContext,
    change_event,
    checked,
    epoch_seconds,
    labels_of,
    safe_name,
    status_of,
    text_of,
)
from pipeline.errors import ValidationError
from pipeline.model import Check, Event, MetricPoint, Metrics, MetricTag, ObjectMeta, new_event_id
from pipeline.model.codec import load_json
from pipeline.model.entity import proxy_entity

RESERVED_PREFIXES = ("eventType", "host", "labels", "message", "name", "tags", "timeReceived", "timestamp", "title")
CONTEXT_FIELDS = ("category", "source", "data", "element_identifiers", "source_links")


def _int(value: Any, path: str, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(path, f"expected seconds since the epoch, got {value!r}")
    return epoch_seconds(value, path)


def _string(value: Any, path: str, *, required: bool = False) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise ValidationError(path, "required: a non-empty string" if required else f"expected a string, got {value!r}")
    return value


def _events(data: dict[str, Any], host: str, collected: int, context: PushContext) -> list[Event]:
    groups = data.get("events") or {}
    if not isinstance(groups, dict):
        raise ValidationError("events", "expected a map from event name to a list of events")
    events = []
    for name, items in groups.items():
        reserved = next((p for p in RESERVED_PREFIXES if name.startswith(p)), None)
        if reserved is not None:
            raise ValidationError(f"events.{name}", f"event names must not start with the reserved prefix {reserved!r}")
        if not isinstance(items, list):
            raise ValidationError(f"events.{name}", "expected a list of events")
        for i, item in enumerate(items):
            at = f"events.{name}[{i}]"
            if not isinstance(item, dict):
                raise ValidationError(at, "expected a JSON object")
            text = _string(item.get("msg_text"), f"{at}.msg_text", required=True)
            title = _string(item.get("msg_title"), f"{at}.msg_title", required=True)
            annotations = {"stackstate/msg_title": title}
            for key in ("event_type", "source_type_name"):
                if item.get(key) is not None:
                    annotations[f"stackstate/{key}"] = text_of(item[key])
            event_context = item.get("context") or {}
            if not isinstance(event_context, dict):
                raise ValidationError(f"{at}.context", "expected a JSON object")
            for key in CONTEXT_FIELDS:
                if event_context.get(key) is not None:
                    annotations[f"stackstate/context.{key}"] = text_of(event_context[key])
            events.append(change_event(
                host=_string(item.get("host"), f"{at}.host") or host,
                name=name,
                output=text,
                status=status_of(item.get("alert_type"), item.get("priority")),
                timestamp=_int(item.get("timestamp"), f"{at}.timestamp", collected),
                namespace=context.namespace,
                labels=labels_of(item.get("tags"), f"{at}.tags"),
                annotations=annotations,
                handlers=context.handlers,
            ))  # fmt: skip
    return events


def _metrics(data: dict[str, Any], host: str, collected: int, context: PushContext) -> list[Event]:
    items = data.get("metrics") or []
    if not isinstance(items, list):
        raise ValidationError("metrics", "expected a list of [name, timestamp, value, {hostname, tags}]")
    by_host: dict[str, list[MetricPoint]] = {}
    for i, item in enumerate(items):
        at = f"metrics[{i}]"
        if not isinstance(item, list) or len(item) != 4 or not isinstance(item[3], dict):
            raise ValidationError(at, "expected [name, timestamp, value, {hostname, tags, type}]")
        name, timestamp, value, extra = item
        name = _string(name, f"{at}[0]", required=True)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValidationError(f"{at}[2]", f"expected a number, got {value!r}")
        labels = labels_of(extra.get("tags"), f"{at}[3].tags")
        point = MetricPoint(name=name, value=float(value), timestamp=_int(timestamp, f"{at}[1]", collected),
                            tags=[MetricTag(k, v) for k, v in labels.items()])  # fmt: skip
        by_host.setdefault(_string(extra.get("hostname"), f"{at}[3].hostname") or host, []).append(point)
    return [
        Event(timestamp=collected, entity=proxy_entity(safe_name(h, "unknown-host"), context.namespace),
              metrics=Metrics(points=points), metadata=ObjectMeta(namespace=context.namespace), id=new_event_id())
        for h, points in by_host.items()
    ]  # fmt: skip


def _service_checks(data: dict[str, Any], host: str, collected: int, context: PushContext) -> list[Event]:
    items = data.get("service_checks") or []
    if not isinstance(items, list):
        raise ValidationError("service_checks", "expected a list of service checks")
    events = []
    for i, item in enumerate(items):
        at = f"service_checks[{i}]"
        if not isinstance(item, dict):
            raise ValidationError(at, "expected a JSON object")
        status = item.get("status")
        if isinstance(status, bool) or not isinstance(status, int) or not 0 <= status <= 3:
            raise ValidationError(f"{at}.status", f"expected 0, 1, 2 or 3, got {status!r}")
        name = _string(item.get("name"), f"{at}.name", required=True)
        executed = _int(item.get("timestamp"), f"{at}.timestamp", collected)
        check = Check(
            metadata=ObjectMeta(name=safe_name(name, "service_check"), namespace=context.namespace,
                                labels=labels_of(item.get("tags"), f"{at}.tags")),
            status=status, output=_string(item.get("message"), f"{at}.message"), executed=executed, issued=executed,
            interval=1, handlers=list(context.handlers),
        )  # fmt: skip
        entity = proxy_entity(safe_name(_string(item.get("host_name"), f"{at}.host_name") or host, "unknown-host"),
                              context.namespace)  # fmt: skip
        events.append(Event(timestamp=executed, entity=entity, check=check,
                            metadata=ObjectMeta(namespace=context.namespace), id=new_event_id()))  # fmt: skip
    return events


def parse(body: bytes, context: PushContext) -> list[Event]:
    """The events of an intake body (raises ValidationError naming the field)."""
    data = load_json(body)
    if not isinstance(data, dict):
        raise ValidationError("", "expected a JSON object")
    host = _string(data.get("internalHostname"), "internalHostname") or context.default_host
    collected = _int(data.get("collection_timestamp"), "collection_timestamp", int(context.now))
    return checked(
        [
            *_events(data, host, collected, context),
            *_metrics(data, host, collected, context),
            *_service_checks(data, host, collected, context),
        ]
    )

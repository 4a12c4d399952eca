"""What every push format shares: JSON bodies with positioned errors, the status of a
severity, labels from tags, and the change event itself."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pipeline.core.numbers import UNIX_SECONDS
from pipeline.errors import ValidationError
from pipeline.model import Check, Event, ObjectMeta, new_event_id
from pipeline.model.entity import proxy_entity

#: Marks a pushed change event (a deploy, a boot), as against a check result.
CHANGE_LABEL = "pipeline.io/event-kind"
CHANGE = "change"

_STATUS_OF = {"info": 0, "normal": 0, "low": 0, "ok": 0, "success": 0, "notice": 0,
              "warning": 1, "warn": 1, "medium": 1,
              "error": 2, "critical": 2, "high": 2, "fatal": 2, "alert": 2, "emergency": 2}  # fmt: skip
#: What a name may not hold (NAME_PATTERN's complement, ASCII as it is).
_NAME_UNSAFE = re.compile(r"[^\w.\-:]", re.ASCII)


@dataclass(slots=True, frozen=True)
class PushContext:
    """What a pushed body does not say: where it came from, when, and where it goes."""

    default_host: str
    now: float
    namespace: str = "default"
    #: handlers of change events (check.handlers)
    handlers: list[str] = field(default_factory=list)


def status_of(*levels: Any) -> int:
    """0, 1 or 2 from the first severity or priority word that means something (default 0)."""
    for level in levels:
        if isinstance(level, str) and level.strip().lower() in _STATUS_OF:
            return _STATUS_OF[level.strip().lower()]
    return 0


def safe_name(text: str, fallback: str) -> str:
    """A valid Sensu name made from free text (``server_start``, ``web1.example.com``)."""
    name = _NAME_UNSAFE.sub("_", text.strip())
    return name or fallback


def labels_of(tags: Any, path: str) -> dict[str, str]:
    """``["env:prod", "team=ops", "canary"]`` as labels ``{env: prod, team: ops, canary: "true"}``."""
    if tags is None:
        return {}
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ValidationError(path, "expected a list of strings")
    labels = {}
    for tag in tags:
        key, sep, value = tag.partition(":") if ":" in tag else tag.partition("=")
        labels[key.strip()] = value.strip() if sep else "true"
    return labels


def text_of(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def epoch_seconds(value: float, path: str) -> int:
    """``value`` as whole seconds since the epoch, within :data:`UNIX_SECONDS` (1970 to 9999):
    what the store, the wire and every clock can hold."""
    low, high = UNIX_SECONDS
    if not low <= value <= high:
        shown = value if isinstance(value, int) or abs(value) < 1e20 else f"{value:g}"
        raise ValidationError(path, f"{shown} is out of range ({low}..{high})")
    return int(value)


def checked(events: list[Event]) -> list[Event]:
    """``events`` once each passes the model's own checks (ranges, sizes): a value the adapter
    let through is refused here, before it reaches the store."""
    for event in events:
        event.validate()
    return events


def iso_timestamp(value: Any, path: str, now: float) -> int:
    if value is None:
        return int(now)
    if not isinstance(value, str):
        raise ValidationError(path, f"expected an ISO-8601 time, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(path, f"expected an ISO-8601 time, got {value!r}") from None
    if parsed.tzinfo is None:
        raise ValidationError(path, f"the time {value!r} has no time zone")
    return epoch_seconds(parsed.timestamp(), path)


def is_change(event: Event) -> bool:
    """Whether ``event`` is a change event (a deploy, a package installed, a container dying)."""
    return event.check is not None and event.check.metadata.labels.get(CHANGE_LABEL) == CHANGE


def give_change_handlers(event: Event, handlers: list[str]) -> bool:
    """Name ``handlers`` (the backend's ``--change-handlers``) on a change event that names no
    handler and no pipeline, whichever way it came (pushed, the events API, an agent's source);
    True when it did."""
    if not handlers or not is_change(event) or event.pipelines:
        return False
    assert event.check is not None
    if event.check.handlers:
        return False
    event.check.handlers = list(handlers)
    return True


def change_event(
    *,
    host: str,
    name: str,
    output: str,
    status: int,
    timestamp: int,
    namespace: str,
    labels: dict[str, str],
    annotations: dict[str, str],
    handlers: list[str],
) -> Event:
    """A change event: a check event of a proxy entity (the host), marked as a change.

    Its check has no flap thresholds, so a run of deploys never makes it flap.
    """
    entity = proxy_entity(safe_name(host, "unknown-host"), namespace)
    check = Check(
        metadata=ObjectMeta(
            name=safe_name(name, "event"),
            namespace=namespace,
            labels={**labels, CHANGE_LABEL: CHANGE},
            annotations=annotations,
        ),
        status=status,
        output=output,
        executed=timestamp,
        issued=timestamp,
        interval=1,
        handlers=list(handlers),
    )
    return Event(timestamp=timestamp, entity=entity, check=check, metadata=ObjectMeta(namespace=namespace),
                 id=new_event_id())  # fmt: skip

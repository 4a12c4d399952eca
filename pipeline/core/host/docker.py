"""Docker Engine events (``GET /events``, one JSON object a line) as change events of the agent's
entity, and the point a reconnect resumes the stream from.

An event's check is ``docker-<type>-<action>`` with the action's first word (``exec_start: sh -c
...`` is ``docker-container-exec_start``, ``health_status: unhealthy`` is
``docker-container-health_status``, the health in the label ``docker.health_status``); its output
starts ``Docker Event: ``; its labels are Sematext's container event tags (``container.status``,
``container.name``, ``container.image.name``, ...). A container's ``oom``, and its ``die`` with a
non-zero ``exitCode``, are status 2; everything else is 0. No I/O here: the source in
:mod:`pipeline.agent.sources.docker` reads the socket and keeps the resume point on disk.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from pipeline.core.host_events import host_event
from pipeline.core.push.common import safe_name
from pipeline.errors import ValidationError
from pipeline.model import Entity, Event

#: The object types the Engine reports events of (API 1.41): all are mapped the same way.
OBJECT_TYPES = ("container", "image", "plugin", "volume", "network", "daemon", "service", "node", "secret", "config")
MESSAGE_PREFIX = "Docker Event: "
NANOS = 1_000_000_000
#: A label or annotation value longer than this is cut (a container's own labels are attributes
#: too, and an event must stay under the maximum event size).
MAX_VALUE = 1024
#: The most attribute text one event carries in its ``docker/attributes`` annotation.
MAX_ATTRIBUTES = 16 * 1024
#: Identities kept of the events at the resume second (Docker buffers 256 events in all).
MAX_SEEN = 1024
#: Bad lines remembered, so that the same bad line replayed after a restart is skipped.
MAX_BAD = 64


@dataclass(frozen=True, slots=True)
class DockerEvent:
    """One event of the stream, as Docker sent it."""

    type: str
    #: as Docker words it, arguments included (``exec_start: sh -c 'exit 0'``)
    action: str
    actor_id: str
    attributes: dict[str, str]
    scope: str
    time_nano: int
    #: the same event replayed after a reconnect has the same identity
    identity: str

    @property
    def verb(self) -> str:
        """The action's first word: ``exec_start``, ``health_status``, ``die``."""
        return self.action.partition(":")[0].strip()

    @property
    def argument(self) -> str:
        """What follows the action's colon: an exec's command, a health status."""
        return self.action.partition(":")[2].strip()

    @property
    def time(self) -> int:
        return self.time_nano // NANOS


def line_identity(line: bytes) -> str:
    """A short digest of a raw line (how a bad line is remembered)."""
    return hashlib.sha256(line.strip()).hexdigest()[:32]


def parse_line(line: bytes) -> DockerEvent:
    """One line of the stream as a :class:`DockerEvent`; ValidationError naming the field when it
    is not JSON or not an event."""
    try:
        document = json.loads(line)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError both are
        raise ValidationError("", f"not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ValidationError("", f"expected an object, got {type(document).__name__}")
    actor = document.get("Actor", {})
    if not isinstance(actor, dict):
        raise ValidationError("Actor", f"expected an object, got {type(actor).__name__}")
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return DockerEvent(
        type=_word(document, "Type"),
        action=_word(document, "Action"),
        actor_id=_text(actor.get("ID", ""), "Actor.ID"),
        attributes=_attributes(actor.get("Attributes") or {}),
        scope=_text(document.get("scope", ""), "scope"),
        time_nano=_time_nano(document),
        identity=hashlib.sha256(canonical.encode()).hexdigest()[:32],
    )


def _text(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise ValidationError(path, f"expected a string, got {type(value).__name__}")
    return value


def _word(document: dict[str, Any], key: str) -> str:
    value = _text(document.get(key, ""), key)
    if not value.strip():
        raise ValidationError(key, "missing or empty")
    return value


def _attributes(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ValidationError("Actor.Attributes", f"expected an object, got {type(value).__name__}")
    # Docker's attributes are strings; a later API with other values is kept, as JSON text.
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in value.items()}


def _time_nano(document: dict[str, Any]) -> int:
    for key, scale in (("timeNano", 1), ("time", NANOS)):
        value = document.get(key)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValidationError(key, f"expected a non-negative integer, got {value!r}")
        return int(value) * scale
    raise ValidationError("timeNano", "missing (and no time)")


def check_name(event: DockerEvent) -> str:
    """``docker-<type>-<first word of the action>``, as a valid check name."""
    return safe_name(f"docker-{event.type}-{event.verb}", "docker-event")


def status_of(event: DockerEvent) -> int:
    """2 for a container's ``oom`` and for its ``die`` with a non-zero exit code, else 0."""
    if event.type != "container":
        return 0
    if event.verb == "oom":
        return 2
    if event.verb == "die" and event.attributes.get("exitCode", "0").strip() not in ("", "0"):
        return 2
    return 0


def _short(identifier: str) -> str:
    """A 64-hex-digit ID (``sha256:`` or not) as Docker's CLI shows it: 12 digits."""
    bare = identifier.removeprefix("sha256:")
    if len(bare) == 64 and all(c in "0123456789abcdef" for c in bare):
        return bare[:12]
    return identifier


def subject(event: DockerEvent) -> str:
    """What the event is about, by name when it has one (a volume's ID is its name)."""
    return _short(event.attributes.get("name") or event.actor_id) or "-"


def _details(event: DockerEvent) -> list[str]:
    attributes = event.attributes
    details = []
    if event.verb == "health_status" and event.argument:
        details.append(event.argument)
    if event.verb == "oom":
        details.append("out of memory")
    if "exitCode" in attributes:
        details.append(f"exit code {attributes['exitCode']}")
    if "signal" in attributes:
        details.append(f"signal {attributes['signal']}")
    if "oldName" in attributes:
        details.append(f"was {attributes['oldName'].lstrip('/')}")
    if event.type == "container" and attributes.get("image"):
        details.append(f"image {attributes['image']}")
    if event.type != "container" and attributes.get("container"):
        details.append(f"container {_short(attributes['container'])}")
    return details


def output_of(event: DockerEvent) -> str:
    """``Docker Event: container die web1 (exit code 137, image nginx:1.27)``. An exec's command
    is left out (it may carry a password); it is in the ``docker/action`` annotation."""
    details = _details(event)
    text = f"{MESSAGE_PREFIX}{event.type} {event.verb} {subject(event)}"
    return f"{text} ({', '.join(details)})" if details else text


def _cut(value: str) -> str:
    return value if len(value) <= MAX_VALUE else value[: MAX_VALUE - 1] + "…"


def labels_of(event: DockerEvent) -> dict[str, str]:
    """Sematext's container event tags, plus the object's own ID and name for any type."""
    attributes = event.attributes
    labels = {"container.type": "docker", "container.object": event.type, "container.status": event.verb,
              "docker.object.id": event.actor_id}  # fmt: skip
    if "name" in attributes:
        labels["docker.object.name"] = attributes["name"]
    container = event.actor_id if event.type == "container" else attributes.get("container", "")
    if container:
        labels["container.id"] = container
    if event.type == "container":
        labels["container.name"] = attributes.get("name", "")
        # Sematext's metrics and logs call it container.image.name, its event table container.image
        labels["container.image.name"] = labels["container.image"] = attributes.get("image", "")
    elif event.type == "image" and "name" in attributes:
        labels["container.image.name"] = attributes["name"]
    if event.verb == "health_status" and event.argument:
        labels["docker.health_status"] = event.argument
    if "exitCode" in attributes:
        labels["docker.exit_code"] = attributes["exitCode"]
    return {key: _cut(value) for key, value in labels.items() if value}


def annotations_of(event: DockerEvent) -> dict[str, str]:
    """The whole action and the attributes (as JSON, within :data:`MAX_ATTRIBUTES`)."""
    kept: dict[str, str] = {}
    budget = MAX_ATTRIBUTES
    for key in sorted(event.attributes):
        value = _cut(event.attributes[key])
        budget -= len(key) + len(value) + 6
        if budget < 0:
            break
        kept[key] = value
    annotations = {"docker/action": _cut(event.action), "docker/time_nano": str(event.time_nano),
                   "docker/attributes": json.dumps(kept, sort_keys=True, ensure_ascii=False)}  # fmt: skip
    if event.scope:
        annotations["docker/scope"] = event.scope
    if len(kept) < len(event.attributes):
        annotations["docker/attributes_dropped"] = str(len(event.attributes) - len(kept))
    return annotations


def to_event(entity: Entity, event: DockerEvent) -> Event:
    """The change event of ``entity`` (the agent's own) that ``event`` is."""
    return host_event(entity, name=check_name(event), output=output_of(event), status=status_of(event),
                      timestamp=event.time, labels=labels_of(event), annotations=annotations_of(event))  # fmt: skip


@dataclass(slots=True)
class ResumePoint:
    """Where a reconnect resumes: ``since`` the newest event's ``timeNano``. Docker replays from
    its buffer every event at or after that instant, so the events of that second already sent
    are remembered by identity and skipped; a bad line is remembered too, so that its replay
    does not fail the source again and again."""

    time_nano: int = 0
    seen: dict[str, None] = field(default_factory=dict)  # an ordered set: the oldest goes first
    bad: dict[str, None] = field(default_factory=dict)

    def since(self) -> str | None:
        """The ``since`` query parameter (``seconds.nanoseconds``), or None to read live only."""
        if not self.time_nano:
            return None
        return f"{self.time_nano // NANOS}.{self.time_nano % NANOS:09d}"

    def is_duplicate(self, event: DockerEvent) -> bool:
        return event.identity in self.seen

    def record(self, event: DockerEvent) -> None:
        """``event`` was sent on: resume after it."""
        second = self.time_nano // NANOS
        if event.time > second:
            self.seen.clear()
        if event.time >= second:
            _add(self.seen, event.identity, MAX_SEEN)
        self.time_nano = max(self.time_nano, event.time_nano)

    def is_bad(self, line: bytes) -> bool:
        return line_identity(line) in self.bad

    def record_bad(self, line: bytes) -> None:
        _add(self.bad, line_identity(line), MAX_BAD)

    def to_json(self) -> dict[str, Any]:
        return {"time_nano": self.time_nano, "seen": list(self.seen), "bad": list(self.bad)}

    @classmethod
    def from_json(cls, document: Any) -> ResumePoint:
        """The resume point saved by :meth:`to_json`; ValidationError naming the field."""
        if not isinstance(document, dict):
            raise ValidationError("", f"expected an object, got {type(document).__name__}")
        time_nano = document.get("time_nano", 0)
        if not isinstance(time_nano, int) or isinstance(time_nano, bool) or time_nano < 0:
            raise ValidationError("time_nano", f"expected a non-negative integer, got {time_nano!r}")
        return cls(time_nano, _identities(document, "seen"), _identities(document, "bad"))


def _add(ordered: dict[str, None], key: str, limit: int) -> None:
    ordered[key] = None
    while len(ordered) > limit:
        del ordered[next(iter(ordered))]


def _identities(document: dict[str, Any], key: str) -> dict[str, None]:
    values = document.get(key, [])
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ValidationError(key, "expected a list of strings")
    return dict.fromkeys(values)

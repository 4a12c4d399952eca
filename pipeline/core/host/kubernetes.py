"""Kubernetes events (core/v1 ``Event`` objects) as change events, and the resume point of a
list-then-watch of them that sends each occurrence once.

Pure: no I/O, no clock; the source in :mod:`pipeline.agent.sources.kubernetes` feeds it what the
API server answered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipeline.core.push.common import change_event, iso_timestamp, safe_name
from pipeline.errors import ValidationError
from pipeline.model import Event

#: The event types of Kubernetes (core/v1 ``Event.type``) and their check status; another type
#: (the API refuses them today, older clusters did not) reads as Normal.
STATUS_OF_TYPE = {"Warning": 1, "Normal": 0}

# What the involved object's kind adds to Sematext's Kubernetes event tags: the common
# Kubernetes tags of the Sematext common schema, so an event of a pod correlates with the pod's
# metrics and logs.
_NAME_TAG_OF_KIND = {
    "Pod": "kubernetes.pod.name",
    "Deployment": "kubernetes.deployment.name",
    "PersistentVolumeClaim": "kubernetes.pvc.name",
    "Node": "kubernetes.node.name",
}


def _text(value: Any, path: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValidationError(path, f"expected a string, got {type(value).__name__}")
    return value


def _mapping(value: Any, path: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError(path, f"expected an object, got {type(value).__name__}")
    return value


def host_of(kind: str, namespace: str, name: str) -> str:
    """The proxy entity an event is about: ``pod:default:web-1``, ``node:worker-1``.

    The name alone is not enough: a Deployment and its Service are often both ``web``, and every
    namespace has its own ``web``; merged into one entity their checks would overwrite each other.
    ``kind/namespace/name`` (kubectl's spelling) cannot be an entity name (``/`` is outside Sensu's
    name rule: names appear in API paths), so the parts are joined by ``:``, which no kind or
    namespace contains; the kind is lower case as kubectl prints it.
    """
    parts = [kind.lower() or "object", namespace, name] if namespace else [kind.lower() or "object", name]
    return safe_name(":".join(parts), "unknown-object")


def _timestamp(obj: dict[str, Any], now: float) -> int:
    """When the event last happened: the series' last observation (events.k8s.io recorders),
    ``lastTimestamp`` (core recorders), ``eventTime``, ``firstTimestamp``, then creation."""
    series = _mapping(obj.get("series"), "series")
    metadata = _mapping(obj.get("metadata"), "metadata")
    candidates = [
        ("series.lastObservedTime", series.get("lastObservedTime")),
        ("lastTimestamp", obj.get("lastTimestamp")),
        ("eventTime", obj.get("eventTime")),
        ("firstTimestamp", obj.get("firstTimestamp")),
        ("metadata.creationTimestamp", metadata.get("creationTimestamp")),
    ]
    for path, value in candidates:
        if value:
            return iso_timestamp(value, path, now)
    return int(now)


def _container_of(field_path: str) -> str:
    """``spec.containers{web}`` -> ``web`` (the kubelet's reference to one container of a pod)."""
    start, end = field_path.find("{"), field_path.rfind("}")
    return field_path[start + 1 : end] if 0 <= start < end else ""


@dataclass(frozen=True, slots=True)
class _Facts:
    """What the mapping reads from one Event object, checked."""

    kind: str
    namespace: str
    name: str
    uid: str
    field_path: str
    reason: str
    message: str
    type: str
    node: str
    component: str
    count: str

    @classmethod
    def of(cls, obj: Any) -> _Facts:
        if not isinstance(obj, dict):
            raise ValidationError("", f"expected an Event object, got {type(obj).__name__}")
        involved = _mapping(obj.get("involvedObject"), "involvedObject")
        source = _mapping(obj.get("source"), "source")
        series = _mapping(obj.get("series"), "series")
        count = obj.get("count") or series.get("count") or 1
        return cls(
            kind=_text(involved.get("kind"), "involvedObject.kind"),
            namespace=_text(involved.get("namespace"), "involvedObject.namespace"),
            name=_text(involved.get("name"), "involvedObject.name"),
            uid=_text(involved.get("uid"), "involvedObject.uid"),
            field_path=_text(involved.get("fieldPath"), "involvedObject.fieldPath"),
            reason=_text(obj.get("reason"), "reason"),
            message=_text(obj.get("message"), "message"),
            type=_text(obj.get("type"), "type") or "Normal",
            # the kubelet names its node as the source host; events.k8s.io recorders as the instance
            node=_text(source.get("host"), "source.host") or _text(obj.get("reportingInstance"), "reportingInstance"),
            component=_text(source.get("component"), "source.component")
            or _text(obj.get("reportingComponent"), "reportingComponent"),
            count=str(count),
        )


def _labels(facts: _Facts, cluster: str | None) -> dict[str, str]:
    """Sematext's Kubernetes event tags (kubernetes.namespace, .name, .kind, .reason, .node,
    .cluster.name), then the common Kubernetes tags the involved object's kind gives."""
    labels = {
        "kubernetes.namespace": facts.namespace,
        "kubernetes.name": facts.name,
        "kubernetes.kind": facts.kind,
        "kubernetes.reason": facts.reason,
        "kubernetes.node": facts.node,
        "kubernetes.cluster.name": cluster or "",
    }
    if facts.kind in _NAME_TAG_OF_KIND:
        labels[_NAME_TAG_OF_KIND[facts.kind]] = facts.name
    if facts.kind == "Pod":
        labels["kubernetes.pod.uid"] = facts.uid
        labels["kubernetes.container.name"] = _container_of(facts.field_path)
        labels["kubernetes.node.name"] = facts.node
    return {key: value for key, value in labels.items() if value}


def event_of(obj: Any, *, namespace: str, now: float, cluster: str | None = None) -> Event:
    """The change event of one Kubernetes ``Event`` object (core/v1 shape).

    Its check is ``k8s-<reason>`` (``k8s-BackOff``), its output the event's message, status 1 for a
    ``Warning`` and 0 for a ``Normal`` event, its entity the involved object (see :func:`host_of`).
    Raises ValidationError naming the field when the object does not have the Event shape.
    """
    facts = _Facts.of(obj)
    if not facts.name:
        raise ValidationError("involvedObject.name", "an event must name the object it is about")
    metadata = _mapping(obj.get("metadata"), "metadata")
    annotations = {
        "kubernetes.event.uid": _text(metadata.get("uid"), "metadata.uid"),
        "kubernetes.event.type": facts.type,
        "kubernetes.event.count": facts.count,
        "kubernetes.event.component": facts.component,
        "kubernetes.involved.field_path": facts.field_path,
    }
    return change_event(
        host=host_of(facts.kind, facts.namespace, facts.name),
        name=f"k8s-{facts.reason or 'Unknown'}",
        output=facts.message or f"{facts.reason} {facts.kind} {facts.name}",
        status=STATUS_OF_TYPE.get(facts.type, 0),
        timestamp=_timestamp(obj, now),
        namespace=namespace,
        labels=_labels(facts, cluster),
        annotations={key: value for key, value in annotations.items() if value},
        handlers=[],
    )


# -- resume ---------------------------------------------------------------------------------------


def key_of(obj: Any) -> tuple[str, str]:
    """(uid, resourceVersion) of an object: one occurrence of one event. A repeated event is the
    same object with a higher ``count`` and a new resourceVersion, so it is a new occurrence."""
    metadata = _mapping(obj.get("metadata") if isinstance(obj, dict) else None, "metadata")
    uid = _text(metadata.get("uid"), "metadata.uid")
    version = _text(metadata.get("resourceVersion"), "metadata.resourceVersion")
    if not uid or not version:
        raise ValidationError("metadata", "an event must have a uid and a resourceVersion")
    return uid, version


def _at_or_below(version: str, floor: int | None) -> bool:
    """Whether ``version`` is at or below ``floor``. Resource versions are opaque strings to
    clients; every API server in use serves etcd revisions, so they compare as integers, and one
    that does not parse is taken as new (sent, rather than lost)."""
    if floor is None:
        return False
    try:
        return int(version) <= floor
    except ValueError:
        return False


@dataclass(slots=True)
class Resume:
    """Where a list-then-watch of events stands, so that a disconnect resumes the watch and a
    ``410 Gone`` re-lists without sending anything twice.

    ``seen`` holds the resourceVersion last handled of every event uid still in the cluster
    (pruned by DELETED and by each re-list, so it is bounded by the cluster's events, which
    expire after an hour). ``floor`` is the resourceVersion up to which an earlier holder of the
    lease already sent events: an event this holder has not seen, at or below it, is not sent.
    """

    resource_version: str | None = None
    floor: int | None = None
    seen: dict[str, str] = field(default_factory=dict)
    duplicates: int = 0

    @classmethod
    def after(cls, resource_version: str | None) -> Resume:
        """Resume where a previous holder stopped (its last resourceVersion), or from nothing."""
        floor = None
        if resource_version is not None:
            try:
                floor = int(resource_version)
            except ValueError:
                floor = None
        return cls(resource_version=resource_version, floor=floor)

    def listed(self, items: list[Any], resource_version: str, *, send_history: bool) -> list[Any]:
        """The events of a (re-)list to send, in order. Without ``send_history`` (the first list of
        a fresh start) none is sent: those happened before the agent observed, as for the other
        host sources; they are remembered so that a later re-list does not send them."""
        to_send, seen = [], {}
        for item in items:
            uid, version = key_of(item)
            seen[uid] = version
            if send_history and self._is_new(uid, version):
                to_send.append(item)
            elif send_history:
                self.duplicates += 1
        self.seen = seen
        self.resource_version = resource_version
        return to_send

    def _is_new(self, uid: str, version: str) -> bool:
        if uid in self.seen:
            return self.seen[uid] != version
        return not _at_or_below(version, self.floor)

    def watched(self, kind: str, obj: Any) -> Any | None:
        """The event of one watch event to send, or None (a bookmark, a deletion, a duplicate)."""
        if not isinstance(obj, dict):
            raise ValidationError("object", f"expected an object, got {type(obj).__name__}")
        if kind == "BOOKMARK":
            metadata = _mapping(obj.get("metadata"), "object.metadata")
            version = _text(metadata.get("resourceVersion"), "object.metadata.resourceVersion")
            self.resource_version = version or self.resource_version
            return None
        uid, version = key_of(obj)
        self.resource_version = version
        if kind == "DELETED":
            self.seen.pop(uid, None)
            return None
        if not self._is_new(uid, version):
            self.duplicates += 1
            return None
        self.seen[uid] = version
        return obj

"""A coordination.k8s.io/v1 ``Lease`` as the agents of one cluster use it to choose the one that
collects the cluster's events, the way client-go's leader election does.

The holder renews ``renewTime`` well within ``leaseDurationSeconds``; the others read the lease
and take it over once it has not changed for a whole duration *by their own clock*: like
client-go, a candidate never compares its clock with the holder's ``renewTime``, so clock skew
between nodes cannot make two agents collect at once. Pure: times are parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pipeline.errors import ValidationError

#: Where the holder records the resourceVersion of the last event it handled, so that the agent
#: taking over resumes there instead of re-sending the cluster's last hour of events.
RESUME_ANNOTATION = "pipeline.io/events-resource-version"


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """What a Lease object says, checked."""

    holder: str
    duration: int
    transitions: int
    acquire_time: str
    resource_version: str
    resume: str | None

    @classmethod
    def of(cls, obj: Any) -> LeaseRecord:
        if not isinstance(obj, dict):
            raise ValidationError("", "expected a Lease object")
        metadata = obj.get("metadata") or {}
        spec = obj.get("spec") or {}
        if not isinstance(metadata, dict) or not isinstance(spec, dict):
            raise ValidationError("spec", "expected the Lease's metadata and spec as objects")
        annotations = metadata.get("annotations") or {}
        duration = spec.get("leaseDurationSeconds") or 0
        transitions = spec.get("leaseTransitions") or 0
        if not isinstance(duration, int) or not isinstance(transitions, int):
            raise ValidationError("spec.leaseDurationSeconds", f"expected integers, got {duration!r}, {transitions!r}")
        resume = annotations.get(RESUME_ANNOTATION) if isinstance(annotations, dict) else None
        return cls(
            holder=str(spec.get("holderIdentity") or ""),
            duration=duration,
            transitions=transitions,
            acquire_time=str(spec.get("acquireTime") or ""),
            resource_version=str(metadata.get("resourceVersion") or ""),
            resume=resume if isinstance(resume, str) and resume else None,
        )


def micro_time(wall: float) -> str:
    """Kubernetes' MicroTime: RFC 3339 with microseconds, in UTC (``2024-03-01T10:12:03.123456Z``)."""
    return datetime.fromtimestamp(wall, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(slots=True)
class Observer:
    """A candidate's view of the lease: the record last read and when (its own monotonic clock)
    it last changed."""

    record: LeaseRecord | None = None
    changed_at: float = 0.0

    def observe(self, record: LeaseRecord, now: float) -> None:
        if self.record is None or record.resource_version != self.record.resource_version:
            self.record, self.changed_at = record, now

    def free_for(self, identity: str, now: float) -> bool:
        """Whether ``identity`` may write the lease now: it holds it, nobody does, or the holder
        has not renewed it for a whole lease duration."""
        record = self.record
        if record is None or record.holder in ("", identity):
            return True
        return now >= self.changed_at + record.duration


def lease_body(
    *,
    name: str,
    namespace: str,
    identity: str,
    duration: int,
    wall: float,
    previous: LeaseRecord | None,
    resume: str | None,
) -> dict[str, Any]:
    """The Lease to create (``previous`` None) or to replace (with the previous resourceVersion, so
    the API server refuses it with 409 if someone else wrote in between)."""
    now = micro_time(wall)
    taking_over = previous is None or previous.holder != identity
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if previous is not None:
        metadata["resourceVersion"] = previous.resource_version
    if resume is not None:
        metadata["annotations"] = {RESUME_ANNOTATION: resume}
    transitions = 0 if previous is None else previous.transitions + (1 if previous.holder not in ("", identity) else 0)
    spec = {
        "holderIdentity": identity,
        "leaseDurationSeconds": duration,
        "acquireTime": now if taking_over or previous is None else previous.acquire_time or now,
        "renewTime": now,
        "leaseTransitions": transitions,
    }
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": metadata, "spec": spec}

"""Events about what a host did by itself (an OOM kill, a package installed, a container dying):
change events of the agent's own entity, on the same timeline as its check results."""

from __future__ import annotations

from pipeline.core.push.common import CHANGE, CHANGE_LABEL
from pipeline.model import Check, Entity, Event, ObjectMeta, new_event_id


def host_event(
    entity: Entity,
    *,
    name: str,
    output: str,
    status: int,
    timestamp: int,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> Event:
    """A change event of ``entity`` (the agent's own) whose check is ``name``.

    Like pushed change events, its check has no interval of its own to miss and no flap
    thresholds, so a burst of container events never makes it flap or go stale.
    """
    namespace = entity.metadata.namespace
    check = Check(
        metadata=ObjectMeta(
            name=name,
            namespace=namespace,
            labels={**(labels or {}), CHANGE_LABEL: CHANGE},
            annotations=dict(annotations or {}),
        ),
        status=status,
        output=output,
        executed=timestamp,
        issued=timestamp,
        interval=1,
    )
    return Event(timestamp=timestamp, entity=entity, check=check, metadata=ObjectMeta(namespace=namespace),
                 id=new_event_id())  # fmt: skip

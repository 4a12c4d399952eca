"""Keepalives and check ttl: what silence means, as Sensu Go decides it. Pure: time is a parameter.

An agent sends a ``keepalive`` event every ``interval`` seconds; its check carries the
warning timeout in ``timeout`` and the critical timeout in ``ttl`` (0: off), as Sensu Go's
agent does. The backend turns each keepalive into a passing ``keepalive`` event, and silence
into a warning (status 1) once ``timeout`` has passed, then critical (status 2) once ``ttl``
has, re-emitted every ``timeout`` seconds until the agent is back.

A check with ``ttl`` whose next result does not come within ``ttl`` seconds of the last one
gets a failing result made by the backend (status ``ttl_status``, else 1), re-emitted every
``ttl`` seconds.
"""

from __future__ import annotations

import dataclasses
import time

from pipeline.model import Check, Entity, Event, ObjectMeta, new_event_id
from pipeline.model.codec import INT64

KEEPALIVE = "keepalive"
REGISTRATION = "registration"
DEREGISTRATION = "deregistration"

DEFAULT_INTERVAL = 20
DEFAULT_WARNING_TIMEOUT = 120
#: Sensu Go 6.14's default; 0 turns the critical state off.
DEFAULT_CRITICAL_TIMEOUT = 240
#: The latest deadline a store keeps (its 64-bit column): a check's ``executed`` may be any int64,
#: and one near the end of that range plus its ttl must not make a row no store can write.
LAST_SECOND = INT64[1]


def _go_time(timestamp: float) -> str:
    """A Unix time as Go's ``time.Time.String()`` prints it in UTC (Sensu's keepalive output)."""
    return time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(timestamp))


def keepalive_status(silent_for: float, warning: int, critical: int) -> int:
    """0, 1 or 2 for an agent silent for ``silent_for`` seconds (a timeout of 0 is off)."""
    if critical > 0 and silent_for >= critical:
        return 2
    if warning > 0 and silent_for >= warning:
        return 1
    return 0


def keepalive_deadline(last_seen: float, now: float, warning: int, critical: int) -> float | None:
    """When to look at a silent agent next: its next threshold, else one warning timeout on.

    None when both timeouts are off (the agent is not watched).
    """
    thresholds = sorted(t for t in (warning, critical) if t > 0)
    if not thresholds:
        return None
    repeat = now + thresholds[0]
    upcoming = [last_seen + t for t in thresholds if last_seen + t > now]
    return min(upcoming[0], repeat) if upcoming else repeat


def stale_at(check: Check) -> int | None:
    """When a stored result needs looking at if nothing newer comes (None: never): a keepalive
    at its agent's next silence threshold from when it was last seen, a check with ``ttl`` once
    its ttl has passed. Stored beside the event, so that backends sharing a store find what is
    due with one indexed query, whichever backend stored it."""
    if check.metadata.name == KEEPALIVE:
        last_seen = check.last_ok or check.executed
        deadline = keepalive_deadline(last_seen, check.executed, check.timeout, check.ttl)
        return None if deadline is None else min(int(deadline), LAST_SECOND)
    return min(check.executed + check.ttl, LAST_SECOND) if check.ttl > 0 else None


def keepalive_check(interval: int, warning: int, critical: int, namespace: str, now: float) -> Check:
    """The check of an agent's keepalive event, carrying its timeouts to the backend."""
    return Check(
        metadata=ObjectMeta(name=KEEPALIVE, namespace=namespace),
        interval=interval,
        timeout=warning,
        ttl=critical,
        executed=int(now),
        issued=int(now),
    )


def passing_keepalive(received: Event, now: float) -> Event:
    """The event the backend stores for a keepalive received at ``now``."""
    assert received.check is not None
    assert received.entity is not None
    entity = dataclasses.replace(received.entity, last_seen=int(now))
    check = dataclasses.replace(
        received.check,
        status=0,
        output=f"Keepalive last sent from {entity.name} at {_go_time(now)}",
        handlers=list(entity.keepalive_handlers) or [KEEPALIVE],
        executed=int(now),
        issued=int(now),
    )
    return dataclasses.replace(
        received, entity=entity, check=check, timestamp=int(now), id=received.id or new_event_id()
    )


def failing_keepalive(stored: Event, last_seen: float, now: float) -> Event:
    """The event for an agent silent since ``last_seen``, built from its stored keepalive event."""
    assert stored.check is not None
    check = stored.check
    silent_for = int(now - last_seen)
    status = keepalive_status(silent_for, check.timeout, check.ttl)
    threshold = check.ttl if status == 2 else check.timeout
    output = f"No keepalive sent from {stored.entity_name} for {silent_for} seconds (>= {threshold})"
    failed = dataclasses.replace(check, status=status, output=output, executed=int(now), issued=int(now))
    return dataclasses.replace(stored, check=failed, timestamp=int(now), id=new_event_id())


def ttl_expired(stored: Event, now: float) -> Event:
    """The failing result the backend makes for a check whose ttl passed without a result."""
    assert stored.check is not None
    check = stored.check
    output = f"Last check execution was {int(now - check.executed)} seconds ago"
    failed = dataclasses.replace(check, status=check.ttl_status or 1, output=output, executed=int(now), issued=int(now))
    return dataclasses.replace(stored, check=failed, timestamp=int(now), id=new_event_id())


def _entity_event(entity: Entity, name: str, handler: str, output: str, now: float) -> Event:
    """An event the backend makes about an entity itself (status 1, as Sensu Go makes them)."""
    namespace = entity.metadata.namespace
    check = Check(metadata=ObjectMeta(name=name, namespace=namespace), status=1, interval=1, handlers=[handler],
                  output=output, executed=int(now), issued=int(now))  # fmt: skip
    return Event(timestamp=int(now), entity=entity, check=check, metadata=ObjectMeta(namespace=namespace),
                 id=new_event_id())  # fmt: skip


def registration_event(entity: Entity, now: float) -> Event:
    """Sensu's ``registration`` event for an entity seen for the first time (handled, not stored)."""
    return _entity_event(entity, REGISTRATION, REGISTRATION, f"Entity {entity.name} registered", now)


def deregistration_events(entity: Entity, stored: list[Event], now: float) -> list[Event]:
    """What deregistering ``entity`` sends to the handlers: each of its events resolved, and a
    ``deregistration`` event for its deregistration handler if it names one (Sensu Go's order)."""
    resolved = []
    for event in stored:
        if event.check is None:
            continue
        check = dataclasses.replace(
            event.check, status=0, output="Resolving due to entity deregistering", history=[], executed=int(now)
        )
        resolved.append(dataclasses.replace(event, check=check, timestamp=int(now), id=new_event_id()))
    handler = entity.deregistration.handler
    if handler:
        resolved.append(_entity_event(entity, DEREGISTRATION, handler, f"Entity {entity.name} deregistered", now))
    return resolved

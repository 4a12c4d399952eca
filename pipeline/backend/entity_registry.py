"""The entities the event processor knows, and when each was last seen.

Sensu Go's eventd registers a proxy entity the first time a check result is about an entity it
does not know: one named by the check's ``proxy_entity_name`` (a brand-new entity), or the
event's own entity when it is not an agent (an event posted through the API, a pushed change
naming a host). Every later event about a known entity carries the stored entity, so an agent's
entity is never replaced by what a proxy event says of it.

Which entities exist is kept in memory (loaded at start, told of every agent registration, API
write and deletion), so a known entity costs no store access per event; only a new one is
written, once. ``last_seen`` is kept in memory too: the time the backend last took an event from
or about the entity (a keepalive, a check result), never one it made itself (a failing
keepalive, an expired ttl). After a restart it starts from the latest stored results.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from pipeline.core.keepalive import KEEPALIVE
from pipeline.model import DEFAULT_NAMESPACE, Check, Entity, Event
from pipeline.model.entity import entity_subscription, proxy_entity
from pipeline.store.base import CheckKey

EntityKey = tuple[str, str]


def proxy_for(event: Event) -> Entity | None:
    """The proxy entity an event is about, as Sensu Go would register it; None when the event is
    an agent's about itself (agents register when they connect)."""
    check, entity = event.check, event.entity
    namespace = event.namespace or DEFAULT_NAMESPACE
    if check is not None and check.proxy_entity_name:
        return proxy_entity(check.proxy_entity_name, namespace)
    if entity is None or entity.entity_class == "agent":
        return None
    subscriptions = list(entity.subscriptions)
    if entity_subscription(entity.name) not in subscriptions:
        subscriptions.append(entity_subscription(entity.name))
    metadata = dataclasses.replace(entity.metadata, namespace=entity.metadata.namespace or namespace)
    return dataclasses.replace(entity, entity_class="proxy", subscriptions=subscriptions, metadata=metadata)


def _proxy_key(event: Event) -> EntityKey | None:
    """The key of :func:`proxy_for`'s entity, without making it (two ``dataclasses.replace``)."""
    check, entity = event.check, event.entity
    namespace = event.namespace or DEFAULT_NAMESPACE
    if check is not None and check.proxy_entity_name:
        return (namespace, check.proxy_entity_name)
    if entity is None or entity.entity_class == "agent":
        return None
    return (entity.metadata.namespace or namespace, entity.name)


def key_of(entity: Entity) -> EntityKey:
    return (entity.metadata.namespace or DEFAULT_NAMESPACE, entity.name)


class EntityRegistry:
    """Known entities by (namespace, name), and when each was last seen (wall-clock seconds)."""

    def __init__(self) -> None:
        self._known: dict[EntityKey, Entity] = {}
        self._last_seen: dict[EntityKey, float] = {}

    def __len__(self) -> int:
        return len(self._known)

    def load(self, entities: Iterable[Entity], latest: Mapping[CheckKey, Check]) -> None:
        """Start from the stored entities, each last seen at its latest stored result (a
        keepalive's ``last_ok``: a failing keepalive was made here, not sent by the agent)."""
        self._known = {key_of(entity): entity for entity in entities}
        for (namespace, entity, name), check in latest.items():
            at = float(check.last_ok if name == KEEPALIVE else check.executed)
            if at and at > self._last_seen.get((namespace, entity), 0.0):
                self._last_seen[(namespace, entity)] = at

    def attribute(self, event: Event) -> Entity | None:
        """Give a proxy's event the stored entity (Sensu Go's ``createProxyEntity``, without the
        store). Returns the entity to register when it is new: it is known from here on, so that
        the next events about it wait for no store; :meth:`forget` it if it could not be stored."""
        key = _proxy_key(event)
        if key is None:
            return None
        known = self._known.get(key)
        if known is not None:  # nearly always: the entity is looked up without making it again
            event.entity = known
            return None
        candidate = proxy_for(event)
        assert candidate is not None  # _proxy_key found it is a proxy's event
        self._known[key] = event.entity = candidate
        return candidate

    def saved(self, entity: Entity) -> None:
        """An entity stored by someone else (an agent's registration, the API): events carry it now."""
        self._known[key_of(entity)] = entity

    def forget(self, key: EntityKey) -> None:
        """The entity is gone (deleted, deregistered, or never stored)."""
        self._known.pop(key, None)
        self._last_seen.pop(key, None)

    def seen(self, event: Event, at: float) -> None:
        self._last_seen[(event.namespace or DEFAULT_NAMESPACE, event.entity_name)] = at

    def last_seen(self, namespace: str, name: str) -> float | None:
        return self._last_seen.get((namespace, name))


__all__ = ["EntityKey", "EntityRegistry", "key_of", "proxy_for"]

"""What an agent may write: events of its own namespace, about its own entity or a proxy entity.

An agent authenticates in its handshake as one entity of one namespace. Every event it sends
afterwards is checked against that entity: it must not name another namespace (anywhere the
event carries one), and the entity it is about must be the agent's own, or a proxy entity
(a check's ``proxy_entity_name``, or an entity of class ``proxy``) that is not the entity of
another agent. Pure: the caller says which entities belong to agents.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pipeline.model import DEFAULT_NAMESPACE, Entity, Event

#: Refusal reasons, as the metric label and the wire's ``reason`` say them.
NAMESPACE, OTHER_AGENT, NOT_PROXY = "namespace", "other_agent", "not_proxy"


@dataclass(slots=True, frozen=True)
class Refusal:
    reason: str
    #: names the field and the value, as every refusal does
    message: str


def refusal(event: Event, agent: Entity, is_agent: Callable[[str, str], bool]) -> Refusal | None:
    """Why ``agent`` may not write ``event`` (None: it may). ``is_agent(namespace, name)`` says
    whether an entity is registered with class ``agent``."""
    return _namespace_refusal(event, agent) or _entity_refusal(event, agent, is_agent)


def _namespace_refusal(event: Event, agent: Entity) -> Refusal | None:
    own = agent.metadata.namespace or DEFAULT_NAMESPACE
    given = [
        ("entity.metadata.namespace", event.entity.metadata.namespace if event.entity else ""),
        ("metadata.namespace", event.metadata.namespace),
        ("check.metadata.namespace", event.check.metadata.namespace if event.check else ""),
    ]
    for path, namespace in given:
        if namespace and namespace != own:
            return Refusal(NAMESPACE, f"{path}: {namespace!r} is not the agent's namespace {own!r}")
    if own != DEFAULT_NAMESPACE and not event.namespace:
        # Without a namespace the event would be stored in "default", which is not the agent's.
        return Refusal(NAMESPACE, f"entity.metadata.namespace: missing (the agent's namespace is {own!r})")
    return None


def _entity_refusal(event: Event, agent: Entity, is_agent: Callable[[str, str], bool]) -> Refusal | None:
    check = event.check
    by_check = bool(check is not None and check.proxy_entity_name)
    subject = check.proxy_entity_name if check is not None and by_check else event.entity_name
    if subject == agent.name:
        return None
    path = "check.proxy_entity_name" if by_check else "entity.metadata.name"
    if is_agent(agent.metadata.namespace or DEFAULT_NAMESPACE, subject):
        return Refusal(OTHER_AGENT, f"{path}: {subject!r} is the entity of another agent")
    if not by_check and (event.entity is None or event.entity.entity_class != "proxy"):
        entity_class = event.entity.entity_class if event.entity is not None else ""
        return Refusal(NOT_PROXY, f"{path}: {subject!r} is neither agent {agent.name!r} nor a proxy entity "
                                  f"(entity_class {entity_class!r}; use check.proxy_entity_name)")  # fmt: skip
    return None

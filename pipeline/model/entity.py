"""Entity: the thing an event is about (an agent's host, or a proxy such as a router)."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.model.codec import INT32, INT64, field
from pipeline.model.meta import ObjectMeta, validate_name

ENTITY_CLASSES = ("agent", "proxy", "backend", "service")


@dataclass(slots=True)
class NetworkInterface:
    name: str = field("", omitempty=True)
    mac: str = field("", omitempty=True)
    addresses: list[str] = field([])


@dataclass(slots=True)
class Network:
    interfaces: list[NetworkInterface] = field([])


@dataclass(slots=True)
class Process:
    name: str = field("")


@dataclass(slots=True)
class System:
    """Facts an agent reports about its host (Sensu's ``entity.system``)."""

    hostname: str = field("", omitempty=True)
    os: str = field("", omitempty=True)
    platform: str = field("", omitempty=True)
    platform_family: str = field("", omitempty=True)
    platform_version: str = field("", omitempty=True)
    network: Network = field(factory=Network)
    arch: str = field("", omitempty=True)
    arm_version: int = field(0, omitempty=True, bounds=INT32)
    libc_type: str = field("")
    vm_system: str = field("")
    vm_role: str = field("")
    cloud_provider: str = field("")
    float_type: str = field("", omitempty=True)
    processes: list[Process] = field([])


@dataclass(slots=True)
class Deregistration:
    handler: str = field("", omitempty=True)


@dataclass(slots=True)
class Entity:
    """Sensu's ``entity``; agents add ``entity:<name>`` to their own subscriptions."""

    entity_class: str = field("")
    system: System = field(factory=System)
    subscriptions: list[str] = field([])
    last_seen: int = field(0, bounds=INT64)
    deregister: bool = field(False)
    deregistration: Deregistration = field(factory=Deregistration)
    user: str = field("", omitempty=True)
    redact: list[str] = field([], omitempty=True)
    metadata: ObjectMeta = field(factory=ObjectMeta)
    sensu_agent_version: str = field("")
    keepalive_handlers: list[str] = field([], omitempty=True)

    @property
    def name(self) -> str:
        return self.metadata.name

    def validate(self, path: str = "entity") -> None:
        """Sensu's rules for names; ``path`` locates the entity in its document ("" at the top)."""
        prefix = f"{path}." if path else ""
        validate_name(self.metadata.name, f"{prefix}metadata.name")
        if self.entity_class:
            validate_name(self.entity_class, f"{prefix}entity_class")


def entity_subscription(name: str) -> str:
    """The subscription every entity has to itself."""
    return f"entity:{name}"


def proxy_entity(name: str, namespace: str) -> Entity:
    """A proxy entity (a thing without an agent, such as a switch), as Sensu Go creates one."""
    return Entity(
        entity_class="proxy",
        subscriptions=[entity_subscription(name)],
        metadata=ObjectMeta(name=name, namespace=namespace),
    )

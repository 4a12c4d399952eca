"""The agent's settings and the entity they make: what the command line and ``--config-file``
give, checked against each other, and the entity the agent shows the backend."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from pipeline import __version__
from pipeline.agent.sources.base import SourceSettings
from pipeline.agent.statsd import StatsdConfig
from pipeline.agent.system import collect_system
from pipeline.core.keepalive import DEFAULT_CRITICAL_TIMEOUT, DEFAULT_INTERVAL, DEFAULT_WARNING_TIMEOUT
from pipeline.core.redact import DEFAULT_REDACT, redacted_entity
from pipeline.errors import ValidationError
from pipeline.model import Entity, ObjectMeta, entity_subscription
from pipeline.model.entity import Deregistration
from pipeline.model.meta import validate_name
from pipeline.tls import TLSFiles
from pipeline.wire import messages


@dataclass(slots=True)
class AgentConfig:
    name: str
    backend_addrs: list[tuple[str, int]]
    namespace: str = "default"
    subscriptions: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    plugin_dirs: list[Path] = field(default_factory=list)
    api_addr: tuple[str, int] | None = ("127.0.0.1", 3031)
    #: the Sensu client socket (TCP and UDP); None disables it
    socket_addr: tuple[str, int] | None = None
    statsd: StatsdConfig | None = None
    #: where the spool lives; None keeps it in memory (tests, benchmarks)
    data_dir: Path | None = None
    spool_max_bytes: int = 256 * 1024 * 1024
    keepalive_interval: int = DEFAULT_INTERVAL
    keepalive_warning_timeout: int = DEFAULT_WARNING_TIMEOUT
    keepalive_critical_timeout: int = DEFAULT_CRITICAL_TIMEOUT
    keepalive_handlers: list[str] = field(default_factory=list)
    heartbeat_interval: float = 5.0
    heartbeat_timeout: float = 15.0
    #: ``{user, password}`` or ``{token}``, sent in the handshake
    credentials: dict[str, str] = field(default_factory=dict)
    tls: TLSFiles = field(default_factory=TLSFiles)
    redact: list[str] = field(default_factory=lambda: list(DEFAULT_REDACT))
    deregister: bool = False
    deregistration_handler: str = ""
    #: the host sources switched on, by name (``--source``; see :data:`pipeline.agent.sources.SOURCES`)
    sources: list[str] = field(default_factory=list)
    source_settings: SourceSettings = field(default_factory=SourceSettings)

    def validate(self) -> None:
        """Raise ValueError naming the flag when the settings contradict each other, or when the
        name is not one Sensu takes (the agent's entity is validated here, once, not with each of
        its events)."""
        try:
            validate_name(self.name, "--name")
            validate_name(self.namespace, "--namespace")  # the backend takes no other for the entity
        except ValidationError as exc:
            raise ValueError(str(exc)) from None
        for flag, timeout in (("--keepalive-warning-timeout", self.keepalive_warning_timeout),
                              ("--keepalive-critical-timeout", self.keepalive_critical_timeout)):  # fmt: skip
            if timeout and timeout <= self.keepalive_interval:
                raise ValueError(
                    f"{flag} {timeout} must be greater than --keepalive-interval {self.keepalive_interval}"
                )
        if self.keepalive_interval <= 0:
            raise ValueError(f"--keepalive-interval must be positive, got {self.keepalive_interval}")
        if not 0 < self.heartbeat_timeout <= messages.MAX_HEARTBEAT_TIMEOUT:  # the backend refuses others
            raise ValueError(
                f"--heartbeat-timeout must be in (0, {messages.MAX_HEARTBEAT_TIMEOUT:.0f}] seconds, "
                f"got {self.heartbeat_timeout}"
            )
        if self.heartbeat_timeout <= self.heartbeat_interval:
            raise ValueError(
                f"--heartbeat-timeout {self.heartbeat_timeout} must be greater than --heartbeat-interval "
                f"{self.heartbeat_interval}"
            )


def agent_entity(config: AgentConfig) -> Entity:
    """The agent's own entity, subscribed to ``entity:<name>`` as Sensu agents always are, with the
    labels and annotations its ``redact`` list names masked: this is what leaves the agent."""
    subscriptions = list(dict.fromkeys([*config.subscriptions, entity_subscription(config.name)]))
    entity = Entity(
        entity_class="agent",
        system=collect_system(),
        subscriptions=subscriptions,
        last_seen=int(time.time()),
        deregister=config.deregister,
        deregistration=Deregistration(handler=config.deregistration_handler),
        redact=list(config.redact),
        metadata=ObjectMeta(
            name=config.name,
            namespace=config.namespace,
            labels=dict(config.labels),
            annotations=dict(config.annotations),
        ),
        sensu_agent_version=__version__,
        keepalive_handlers=list(config.keepalive_handlers),
    )
    return redacted_entity(entity)

"""Resources operators write besides checks: handlers (more kinds join in later issues)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pipeline.errors import ValidationError
from pipeline.model.check import CheckConfig, HookConfig
from pipeline.model.codec import JSON
from pipeline.model.codec import field as model_field
from pipeline.model.meta import DEFAULT_NAMESPACE, ObjectMeta, validate_name

HANDLER_TYPES = ("pipe", "tcp", "udp", "set", "plugin")
SUPPORTED_HANDLER_TYPES = ("pipe", "plugin")


@dataclass(slots=True)
class HandlerSocket:
    host: str = model_field("", omitempty=True)
    port: int = model_field(0)


@dataclass(slots=True)
class Handler:
    """Sensu Go's ``Handler``: what to do with an event."""

    metadata: ObjectMeta = model_field(factory=ObjectMeta)
    type: str = model_field("", omitempty=True)
    mutator: str = model_field("", omitempty=True)
    command: str = model_field("", omitempty=True)
    timeout: int = model_field(0)
    socket: HandlerSocket | None = model_field(None, omitempty=True)
    handlers: list[str] = model_field([])
    filters: list[str] = model_field([])
    env_vars: list[str] = model_field([])
    runtime_assets: list[str] = model_field([])
    secrets: list[JSON] = model_field([])
    #: pipeline's own: the in-process plugin (``module:attr`` or an entry point name) and its options
    plugin: str = model_field("", omitempty=True)
    options: dict[str, JSON] = model_field({}, omitempty=True)

    def validate(self, path: str = "") -> None:
        def at(name: str) -> str:
            return f"{path}.{name}" if path else name

        validate_name(self.metadata.name, at("metadata.name"))
        if self.type not in HANDLER_TYPES:
            raise ValidationError(at("type"), f"expected one of {', '.join(HANDLER_TYPES)}, got {self.type!r}")
        if self.type not in SUPPORTED_HANDLER_TYPES:
            raise ValidationError(
                at("type"),
                f"handler type {self.type!r} is not supported yet (supported: {', '.join(SUPPORTED_HANDLER_TYPES)})",
            )
        if self.type == "pipe" and not self.command.strip():
            raise ValidationError(at("command"), "required for a pipe handler")
        if self.type == "plugin" and not self.plugin.strip():
            raise ValidationError(at("plugin"), "required for a plugin handler (module:attr or an entry point name)")
        if self.timeout < 0:
            raise ValidationError(at("timeout"), f"must not be negative, got {self.timeout}")


#: Resource kinds by their ``type`` in YAML.
RESOURCE_TYPES: dict[str, type[Any]] = {"CheckConfig": CheckConfig, "HookConfig": HookConfig, "Handler": Handler}


def _namespace_of(resource: Any) -> str:
    return resource.metadata.namespace or DEFAULT_NAMESPACE


@dataclass(slots=True)
class Resources:
    """Everything loaded from a config directory."""

    checks: list[CheckConfig] = field(default_factory=list)
    handlers: list[Handler] = field(default_factory=list)
    hooks: list[HookConfig] = field(default_factory=list)

    def add(self, resource: Any) -> None:
        if isinstance(resource, CheckConfig):
            self.checks.append(resource)
        elif isinstance(resource, HookConfig):
            self.hooks.append(resource)
        elif isinstance(resource, Handler):
            self.handlers.append(resource)
        else:
            raise TypeError(f"not a resource: {resource!r}")

    def handler(self, name: str, namespace: str = DEFAULT_NAMESPACE) -> Handler | None:
        for handler in self.handlers:
            if handler.metadata.name == name and _namespace_of(handler) == namespace:
                return handler
        return None

    def hooks_for(self, checks: Iterable[CheckConfig]) -> list[HookConfig]:
        """The hook configurations the ``check_hooks`` of ``checks`` name (each once)."""
        wanted = {
            (_namespace_of(c), name)
            for c in checks
            for entry in c.check_hooks
            for names in entry.values()
            for name in names
        }
        return [h for h in self.hooks if (_namespace_of(h), h.metadata.name) in wanted]

    def checks_for(self, subscriptions: Iterable[str], namespace: str = DEFAULT_NAMESPACE) -> list[CheckConfig]:
        """The checks of ``namespace`` that share a subscription with ``subscriptions``."""
        wanted = set(subscriptions)
        return [c for c in self.checks if _namespace_of(c) == namespace and wanted.intersection(c.subscriptions)]

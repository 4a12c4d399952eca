"""The resources operators write, and the set of them a backend runs with.

Cross references (a handler set naming its members, a pipeline naming its filters, mutator
and handler) are checked across the whole set: a loop of handler sets or a workflow running a
set is an error (:meth:`Resources.reference_errors`), with the path of names that shows it; a
name that points at nothing is only a warning (:mod:`pipeline.model.references`), as resources
arrive in any order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pipeline.errors import ValidationError
from pipeline.model.asset import Asset
from pipeline.model.check import CheckConfig, HookConfig
from pipeline.model.codec import JSON, UINT32
from pipeline.model.codec import field as model_field
from pipeline.model.entity import Entity
from pipeline.model.meta import DEFAULT_NAMESPACE, ObjectMeta, validate_name
from pipeline.model.pipeline import EventFilter, Mutator, Pipeline, Silenced
from pipeline.model.secrets import EnvSecretsProvider, Secret, SecretRef, validate_secret_refs

HANDLER_TYPES = ("pipe", "tcp", "udp", "set", "plugin")
#: How deep handler sets may nest (Sensu Go's limit).
MAX_SET_DEPTH = 3


@dataclass(slots=True)
class HandlerSocket:
    host: str = model_field("", omitempty=True)
    port: int = model_field(0, bounds=UINT32)


@dataclass(slots=True)
class Handler:
    """Sensu Go's ``Handler``: what to do with an event."""

    metadata: ObjectMeta = model_field(factory=ObjectMeta)
    type: str = model_field("", omitempty=True)
    mutator: str = model_field("", omitempty=True)
    command: str = model_field("", omitempty=True)
    timeout: int = model_field(0, bounds=UINT32)
    socket: HandlerSocket | None = model_field(None, omitempty=True)
    handlers: list[str] = model_field([])
    filters: list[str] = model_field([])
    env_vars: list[str] = model_field([])
    runtime_assets: list[str] = model_field([])
    secrets: list[SecretRef] = model_field([])
    #: pipeline's own: the in-process plugin (``module:attr`` or an entry point name) and its options
    plugin: str = model_field("", omitempty=True)
    options: dict[str, JSON] = model_field({}, omitempty=True)
    #: pipeline's own: attempts before the event goes to the dead letters (1: no retry)
    max_attempts: int = model_field(3, omitempty=True, bounds=UINT32)
    #: pipeline's own: runs of this handler at once, at most (0: only the backend's limits)
    concurrency: int = model_field(0, omitempty=True, bounds=UINT32)

    def validate(self, path: str = "") -> None:
        def at(name: str) -> str:
            return f"{path}.{name}" if path else name

        validate_name(self.metadata.name, at("metadata.name"))
        validate_secret_refs(self.secrets, path)
        if self.secrets and self.type != "pipe":
            raise ValidationError(at("secrets"), "only a pipe handler's command has an environment")
        if self.runtime_assets and self.type != "pipe":
            raise ValidationError(at("runtime_assets"), "only a pipe handler's command runs programs of assets")
        if self.type not in HANDLER_TYPES:
            raise ValidationError(at("type"), f"expected one of {', '.join(HANDLER_TYPES)}, got {self.type!r}")
        if self.type == "pipe" and not self.command.strip():
            raise ValidationError(at("command"), "required for a pipe handler")
        if self.type == "plugin" and not self.plugin.strip():
            raise ValidationError(at("plugin"), "required for a plugin handler (module:attr or an entry point name)")
        if self.type in ("tcp", "udp") and (self.socket is None or not self.socket.host
                                            or not 0 < self.socket.port < 65536):  # fmt: skip
            raise ValidationError(at("socket"), f"a {self.type} handler needs socket: {{host, port}}")
        if self.type == "set" and not self.handlers:
            raise ValidationError(at("handlers"), "a set names at least one handler")
        if self.type == "plugin" and self.mutator:
            raise ValidationError(at("mutator"), "a plugin handler takes the event itself, not mutated bytes")
        if self.timeout < 0:
            raise ValidationError(at("timeout"), f"must not be negative, got {self.timeout}")
        if self.max_attempts < 1:
            raise ValidationError(at("max_attempts"), f"must be at least 1, got {self.max_attempts}")
        if self.concurrency < 0:
            raise ValidationError(at("concurrency"), f"must not be negative, got {self.concurrency}")


@dataclass(slots=True)
class Namespace:
    """Sensu Go's core/v2 ``Namespace``: only a name, in the spec (its document has no metadata,
    and its JSON is ``{"name": ...}``). ``metadata`` reads as the name, for code that keys
    every resource by its metadata."""

    name: str = model_field("")

    @property
    def metadata(self) -> ObjectMeta:
        return ObjectMeta(name=self.name)

    @metadata.setter
    def metadata(self, value: ObjectMeta) -> None:
        self.name = value.name

    def validate(self, path: str = "") -> None:
        validate_name(self.name, f"{path}.name" if path else "name")


#: Resource kinds by their ``type`` in YAML.
RESOURCE_TYPES: dict[str, type[Any]] = {
    "CheckConfig": CheckConfig,
    "HookConfig": HookConfig,
    "Handler": Handler,
    "EventFilter": EventFilter,
    "Mutator": Mutator,
    "Pipeline": Pipeline,
    "Silenced": Silenced,
    "Namespace": Namespace,
    "Asset": Asset,
}


@dataclass(slots=True, frozen=True)
class ReferenceError:
    """A cross-reference problem: which resource, where in it, and what."""

    kind: str
    namespace: str
    name: str
    path: str
    message: str


def _namespace_of(resource: Any) -> str:
    return resource.metadata.namespace or DEFAULT_NAMESPACE


@dataclass(slots=True)
class Resources:
    """Everything loaded from a config directory."""

    checks: list[CheckConfig] = field(default_factory=list)
    handlers: list[Handler] = field(default_factory=list)
    hooks: list[HookConfig] = field(default_factory=list)
    filters: list[EventFilter] = field(default_factory=list)
    mutators: list[Mutator] = field(default_factory=list)
    pipelines: list[Pipeline] = field(default_factory=list)
    silences: list[Silenced] = field(default_factory=list)
    namespaces: list[Namespace] = field(default_factory=list)
    assets: list[Asset] = field(default_factory=list)
    #: proxy entities of the config files: registered in the store at start and at each reload
    entities: list[Entity] = field(default_factory=list)
    #: secrets/v1 kinds, read from the config files only (the API refuses them)
    secrets_providers: list[EnvSecretsProvider] = field(default_factory=list)
    secrets: list[Secret] = field(default_factory=list)

    def add(self, resource: Any) -> None:
        kinds: tuple[tuple[type[Any], list[Any]], ...] = (
            (CheckConfig, self.checks),
            (HookConfig, self.hooks),
            (Handler, self.handlers),
            (EventFilter, self.filters),
            (Mutator, self.mutators),
            (Pipeline, self.pipelines),
            (Silenced, self.silences),
            (Namespace, self.namespaces),
            (Asset, self.assets),
            (Entity, self.entities),
            (EnvSecretsProvider, self.secrets_providers),
            (Secret, self.secrets),
        )
        for kind, items in kinds:
            if isinstance(resource, kind):
                items.append(resource)
                return
        raise TypeError(f"not a resource: {resource!r}")

    @staticmethod
    def _named(items: Iterable[Any], name: str, namespace: str) -> Any:
        for item in items:
            if item.metadata.name == name and _namespace_of(item) == namespace:
                return item
        return None

    def handler(self, name: str, namespace: str = DEFAULT_NAMESPACE) -> Handler | None:
        found: Handler | None = self._named(self.handlers, name, namespace)
        return found

    def filter(self, name: str, namespace: str = DEFAULT_NAMESPACE) -> EventFilter | None:
        found: EventFilter | None = self._named(self.filters, name, namespace)
        return found

    def mutator(self, name: str, namespace: str = DEFAULT_NAMESPACE) -> Mutator | None:
        found: Mutator | None = self._named(self.mutators, name, namespace)
        return found

    def pipeline(self, name: str, namespace: str = DEFAULT_NAMESPACE) -> Pipeline | None:
        found: Pipeline | None = self._named(self.pipelines, name, namespace)
        return found

    def asset(self, name: str, namespace: str = DEFAULT_NAMESPACE) -> Asset | None:
        found: Asset | None = self._named(self.assets, name, namespace)
        return found

    def assets_for(self, runtime_assets: Iterable[str], namespace: str) -> list[Asset]:
        """The Assets of ``namespace`` that ``runtime_assets`` name (each once; names of no
        Asset left out: the one running them reports those)."""
        names = dict.fromkeys(runtime_assets)
        return [asset for name in names if (asset := self.asset(name, namespace)) is not None]

    def assets_needed(self, checks: Iterable[CheckConfig], hooks: Iterable[HookConfig]) -> list[Asset]:
        """The Assets the ``runtime_assets`` of ``checks`` and ``hooks`` name, each once."""
        found: dict[tuple[str, str], Asset] = {}
        items: list[CheckConfig | HookConfig] = [*checks, *hooks]
        for item in items:
            namespace = _namespace_of(item)
            for asset in self.assets_for(item.runtime_assets, namespace):
                found[(namespace, asset.metadata.name)] = asset
        return list(found.values())

    def namespace_exists(self, name: str) -> bool:
        """Whether resources may live in namespace ``name``: ``default`` always, any other once a
        ``Namespace`` declares it, as in Sensu Go."""
        return name == DEFAULT_NAMESPACE or any(namespace.name == name for namespace in self.namespaces)

    def reference_errors(self) -> list[ReferenceError]:
        """Resources in a namespace no ``Namespace`` declares, loops and over-deep nesting in
        handler sets, and workflows that name a handler set (a workflow runs one handler). Names
        that point at nothing are not errors here: see
        :func:`pipeline.model.references.dangling_references`."""
        errors = self._namespace_errors()
        for handler in self.handlers:
            namespace, name = _namespace_of(handler), handler.metadata.name
            problem = self._set_problem([name], namespace) if handler.type == "set" else None
            if problem:
                errors.append(ReferenceError("Handler", namespace, name, "spec.handlers", problem))
        for pipeline in self.pipelines:
            namespace, name = _namespace_of(pipeline), pipeline.metadata.name
            for i, workflow in enumerate(pipeline.workflows):
                target_name = workflow.handler.name if workflow.handler else ""
                target = self.handler(target_name, namespace)
                if target is not None and target.type == "set":
                    message = f"{target_name!r} is a handler set; a workflow runs one handler"
                    errors.append(ReferenceError("Pipeline", namespace, name, f"spec.workflows[{i}].handler", message))
        return errors

    def _namespace_errors(self) -> list[ReferenceError]:
        errors = []
        kinds = (("CheckConfig", self.checks), ("HookConfig", self.hooks), ("Handler", self.handlers),
                 ("EventFilter", self.filters), ("Mutator", self.mutators), ("Pipeline", self.pipelines),
                 ("Silenced", self.silences), ("Asset", self.assets), ("Entity", self.entities))  # fmt: skip
        for kind, items in kinds:
            for item in items:
                namespace = _namespace_of(item)
                if not self.namespace_exists(namespace):
                    message = f"no Namespace {namespace!r}: declare it (type: Namespace, spec: {{name: {namespace}}})"
                    errors.append(ReferenceError(kind, namespace, item.metadata.name, "metadata.namespace", message))
        return errors

    def _set_problem(self, chain: list[str], namespace: str) -> str | None:
        """A loop or too deep a nesting below the set at the end of ``chain``, as a path of names."""
        handler = self.handler(chain[-1], namespace)
        if handler is None or handler.type != "set":
            return None
        if len(chain) > MAX_SET_DEPTH:
            return f"handler sets nest deeper than {MAX_SET_DEPTH} levels: {' -> '.join(chain)}"
        for member in handler.handlers:
            if member in chain:
                return f"handler sets loop: {' -> '.join([*chain, member])}"
            problem = self._set_problem([*chain, member], namespace)
            if problem:
                return problem
        return None

    def expand_handlers(self, names: Iterable[str], namespace: str) -> tuple[list[Handler], list[str]]:
        """Sensu Go's legacy expansion: sets replaced by their members (recursively), unique,
        sorted by name; the names no handler defines are returned apart."""
        found: dict[str, Handler] = {}
        missing: list[str] = []

        def visit(name: str, depth: int) -> None:
            handler = self.handler(name, namespace)
            if handler is None:
                missing.append(name)
            elif handler.type != "set":
                found[name] = handler
            elif depth < MAX_SET_DEPTH:
                for member in handler.handlers:
                    visit(member, depth + 1)

        for name in names:
            visit(name, 0)
        return [found[name] for name in sorted(found)], sorted(set(missing))

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

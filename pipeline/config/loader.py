"""Load Sensu Go resource files, reporting every error as a path: the one loading and checking
function of ``pipeline validate``, ``pipeline create -f``, the backend's start and its reload.

A file or a directory is read into documents (:mod:`pipeline.config.documents`: YAML, wrapped
JSON, a JSON list). Each document is ``{type, api_version: core/v2, metadata, spec}``; the spec
is decoded strictly (unknown fields are errors) and validated by its resource class. Sensu Go
kinds pipeline does not run are refused by name (:mod:`pipeline.config.kinds`). Every error of
the whole set is collected, each naming its file, line, document, resource and field, so that
one run shows them all. Names that point at no resource are warnings, not errors.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.config.documents import Document, line_of, read_files, resource_files
from pipeline.config.kinds import unsupported
from pipeline.config.strict_yaml import MAX_YAML_DEPTH, MAX_YAML_NODES, StrictLoader, yaml_error
from pipeline.core.asset_filters import AssetFilterError, compile_asset_filter
from pipeline.core.entity_attributes import compile_entity_attributes
from pipeline.core.filtering import compile_event_filter, fatigue_annotation_problems
from pipeline.core.js import compile_mutator
from pipeline.core.js.lint import lint_filter
from pipeline.core.schedule import ScheduleError, parse_cron
from pipeline.core.templates import compile_template
from pipeline.errors import ConfigError, ConfigErrors, ValidationError
from pipeline.model.asset import Asset
from pipeline.model.check import CheckConfig
from pipeline.model.codec import decode
from pipeline.model.entity import Entity
from pipeline.model.meta import DEFAULT_NAMESPACE, ObjectMeta, validate_name
from pipeline.model.pipeline import EventFilter, Mutator, Silenced
from pipeline.model.references import dangling_references
from pipeline.model.resources import RESOURCE_TYPES, ReferenceError, Resources
from pipeline.model.secrets import SECRETS_API_VERSION, EnvSecretsProvider, Secret

__all__ = ["MAX_YAML_DEPTH", "MAX_YAML_NODES", "StrictLoader", "yaml_error", "yaml_files"]

API_VERSION = "core/v2"
DOCUMENT_KEYS = ("type", "api_version", "metadata", "spec")
#: What a file may define: the resources the backend runs, and entities (registered in its store).
FILE_KINDS: dict[str, type[Any]] = {**RESOURCE_TYPES, "Entity": Entity, "Env": EnvSecretsProvider, "Secret": Secret}
#: the kinds of another API group than core/v2, which only the config files may hold
OTHER_VERSIONS = {"Env": SECRETS_API_VERSION, "Secret": SECRETS_API_VERSION}


def yaml_files(directory: Path) -> list[Path]:
    return resource_files(directory)


@dataclass(slots=True)
class Loaded:
    """What a file or directory holds: the resources, each valid document with its resource (in
    file order), the errors (nothing may be applied when there is one) and the warnings."""

    resources: Resources = field(default_factory=Resources)
    documents: list[tuple[Document, str, Any]] = field(default_factory=list)
    errors: list[ConfigError] = field(default_factory=list)
    warnings: list[ConfigError] = field(default_factory=list)


class _Checker:
    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.loaded = Loaded()
        self._defined: dict[tuple[str, str, str], Document] = {}

    def check(self, document: Document) -> None:
        label = None
        try:
            kind, metadata = _envelope(document.data, self.namespace)
            label = f"{kind} {metadata.name!r}"
            resource = _resource(kind, metadata, document.data.get("spec"))
        except ValidationError as exc:
            self._error(document, exc.path, str(exc), label)
            return
        key = (kind, "" if kind == "Namespace" else metadata.namespace, metadata.name)
        label = f"{kind} {metadata.name!r}"
        if key in self._defined:
            other = self._defined[key]
            self._error(
                document, "metadata.name", f"defined twice: also at {other.file}: document {other.number}", label
            )
            return
        self._defined[key] = document
        self.loaded.resources.add(resource)
        self.loaded.documents.append((document, kind, resource))

    def _error(self, document: Document, path: str, message: str, label: str | None) -> None:
        error = ConfigError(document.file, message, document=document.number, resource=label,
                            line=line_of(document, path))  # fmt: skip
        self.loaded.errors.append(error)

    def located(self, problem: ReferenceError) -> ConfigError:
        key = (problem.kind, problem.namespace, problem.name)
        document = self._defined[key]
        message, label = f"{problem.path}: {problem.message}", f"{problem.kind} {problem.name!r}"
        return ConfigError(document.file, message, document=document.number, resource=label,
                           line=line_of(document, problem.path))  # fmt: skip


def check_documents(
    files: list[tuple[list[Document], ConfigError | None]], namespace: str = DEFAULT_NAMESPACE
) -> Loaded:
    """Check every document of every file (each file's read error after its documents' errors)
    and the references between them (see the module's docstring); a document that names no
    namespace is in ``namespace``."""
    checker = _Checker(namespace)
    for documents, error in files:
        for document in documents:
            checker.check(document)
        if error is not None:
            checker.loaded.errors.append(error)
    resources = checker.loaded.resources
    checker.loaded.errors.extend(checker.located(p) for p in resources.reference_errors())
    checker.loaded.warnings.extend(checker.located(p) for p in dangling_references(resources))
    checker.loaded.warnings.extend(checker.located(p) for p in _filter_findings(resources))
    checker.loaded.warnings.extend(checker.located(p) for p in _fatigue_findings(resources))
    return checker.loaded


def _filter_findings(resources: Resources) -> list[ReferenceError]:
    """Filter expressions that fail on every sample event (a check result, metrics, both) or can
    never be true: a warning, as Sensu Go would only skip them at run time (and an ``allow``
    filter whose expressions all fail lets everything through)."""
    found = []
    now = int(time.time())
    for event_filter in resources.filters:
        for finding in lint_filter(compile_event_filter(event_filter), now):
            found.append(ReferenceError("EventFilter", event_filter.metadata.namespace or DEFAULT_NAMESPACE,
                                        event_filter.metadata.name, f"spec.expressions[{finding.index}]",
                                        f"{finding.source!r} {finding.problem}"))  # fmt: skip
    return found


def _fatigue_findings(resources: Resources) -> list[ReferenceError]:
    """Fatigue annotations of checks and entities that the fatigue filter cannot read as numbers."""
    found = []
    owners = [("CheckConfig", c.metadata) for c in resources.checks] + [
        ("Entity", e.metadata) for e in resources.entities
    ]
    for kind, meta in owners:
        for key, problem in fatigue_annotation_problems(meta.annotations):
            found.append(ReferenceError(kind, meta.namespace or DEFAULT_NAMESPACE, meta.name,
                                        f"metadata.annotations.{key}", problem))  # fmt: skip
    return found


def load_path(path: Path, namespace: str = DEFAULT_NAMESPACE) -> Loaded:
    """Read and check a resource file or every resource file of a directory."""
    return check_documents(read_files(path), namespace)


def _envelope(document: Any, namespace: str = DEFAULT_NAMESPACE, *, files: bool = True) -> tuple[str, ObjectMeta]:
    """The resource kind and metadata of a document, checked."""
    if not isinstance(document, dict):
        raise ValidationError("", f"expected a mapping with {', '.join(DOCUMENT_KEYS)}, got {_kind(document)}")
    for key in document:
        if key not in DOCUMENT_KEYS:
            raise ValidationError(str(key), f"unknown field (expected {', '.join(DOCUMENT_KEYS)})")
    kind, version = document.get("type"), document.get("api_version")
    # isinstance first: a list or mapping here is unhashable and would crash the dict lookup.
    expected = OTHER_VERSIONS.get(kind, API_VERSION) if isinstance(kind, str) else API_VERSION
    known = isinstance(kind, str) and kind in FILE_KINDS and version == expected
    if not known and isinstance(kind, str) and (version is None or isinstance(version, str)):
        refusal = unsupported(kind, version or "")
        if refusal is not None:
            raise ValidationError("type", refusal)
    if not isinstance(kind, str) or kind not in FILE_KINDS:
        got = "nothing" if kind is None else repr(kind)
        raise ValidationError("type", f"expected one of {', '.join(FILE_KINDS)}, got {got}")
    if version != expected:
        got = "nothing" if version is None else repr(version)
        raise ValidationError("api_version", f"expected {expected!r}, got {got}")
    if kind in OTHER_VERSIONS and not files:
        raise ValidationError("type", f"a {kind} ({version}) is read from the backend's config directory only")
    metadata = decode(ObjectMeta, document.get("metadata") or {}, "metadata")
    if kind == "Namespace":
        if metadata != ObjectMeta():
            raise ValidationError("metadata", "a Namespace has no metadata: its name is spec.name")
        spec = document.get("spec")
        metadata.name = str(spec.get("name", "")) if isinstance(spec, dict) else ""
        return kind, metadata
    if kind != "Silenced":  # a silence is named after what it silences (``*:disk``)
        validate_name(metadata.name, "metadata.name")
    metadata.namespace = metadata.namespace or namespace
    return kind, metadata


def _resource(kind: str, metadata: ObjectMeta, spec: Any) -> Any:
    """The resource decoded from its spec, with its metadata, validated."""
    if not isinstance(spec, dict):
        raise ValidationError("spec", f"expected a mapping, got {_kind(spec)}")
    if "metadata" in spec:
        raise ValidationError("spec.metadata", "unknown field (metadata belongs at the top level)")
    resource = decode(FILE_KINDS[kind], spec, "spec")
    resource.metadata = metadata
    if isinstance(resource, CheckConfig) and "publish" not in spec:
        # A check with a schedule is meant to run; Sensu Go would silently never schedule it.
        resource.publish = bool(resource.interval or resource.cron)
    if isinstance(resource, Entity):
        resource.entity_class = resource.entity_class or "proxy"
    resource.validate("spec")
    _compile(resource)
    return resource


def _compile(resource: Any) -> None:
    """What must compile to run: a silence's name, filter expressions, templates, a cron line."""
    if isinstance(resource, Silenced):
        resource.metadata.name = resource.derived_name
    if isinstance(resource, EventFilter):
        compile_event_filter(resource)  # an expression that does not parse is a config error
    if isinstance(resource, Asset):
        compile_asset_filters(resource)
    if isinstance(resource, Mutator) and resource.kind == "template":
        compile_template(resource.template, "spec.template")
    if isinstance(resource, Mutator) and resource.kind == "javascript":
        compile_mutator(resource.eval, "spec.eval")
    if isinstance(resource, CheckConfig) and resource.proxy_requests is not None:
        compile_entity_attributes(resource.proxy_requests.entity_attributes, "spec.proxy_requests.entity_attributes")
    if isinstance(resource, CheckConfig) and resource.cron:
        try:
            parse_cron(resource.cron)
        except ScheduleError as exc:
            raise ValidationError("spec.cron", str(exc)) from None


def compile_asset_filters(asset: Asset) -> None:
    """Every filter of ``asset`` and of its builds must be one pipeline evaluates exactly."""
    places = [("spec", asset.filters), *((f"spec.builds[{i}]", b.filters) for i, b in enumerate(asset.builds))]
    for place, filters in places:
        for i, text in enumerate(filters):
            try:
                compile_asset_filter(text)
            except AssetFilterError as exc:
                raise ValidationError(f"{place}.filters[{i}]", str(exc)) from None


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    names: dict[type, str] = {dict: "a mapping", list: "a list", str: "a string"}
    return names.get(type(value), type(value).__name__)


def resource_from_document(document: Any) -> Any:
    """One resource from a ``{type, api_version, metadata, spec}`` document, validated on its own
    (raises ValidationError naming the field)."""
    kind, metadata = _envelope(document, files=False)
    return _resource(kind, metadata, document.get("spec"))


def validate_directory(directory: Path) -> list[ConfigError]:
    """Every error in the resource files under ``directory`` (an empty list when all is well)."""
    try:
        load_directory(directory)
    except ConfigErrors as exc:
        return exc.errors
    return []


def load_directory(directory: Path) -> Resources:
    """Load every resource under ``directory``; raise :class:`ConfigErrors` listing all problems."""
    if not directory.is_dir():
        raise ConfigErrors([ConfigError(str(directory), "not a directory")])
    loaded = load_path(directory)
    if loaded.errors:
        raise ConfigErrors(loaded.errors)
    return loaded.resources

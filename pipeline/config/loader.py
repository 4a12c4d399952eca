"""Load Sensu Go resource YAML from a directory, reporting every error as a path.

Every ``*.yml`` and ``*.yaml`` file below the directory, in sorted order, may hold several
documents. Each document is ``{type, api_version: core/v2, metadata, spec}``; the spec is
decoded strictly (unknown fields are errors) and validated by its resource class. All errors
of the directory are collected, so that one run of ``pipeline validate`` shows them all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from pipeline.core.filtering import CompiledFilter
from pipeline.core.schedule import ScheduleError, parse_cron
from pipeline.core.templates import compile_template
from pipeline.errors import ConfigError, ConfigErrors, ValidationError
from pipeline.model.check import CheckConfig
from pipeline.model.codec import decode
from pipeline.model.meta import DEFAULT_NAMESPACE, ObjectMeta, validate_name
from pipeline.model.pipeline import EventFilter, Mutator, Silenced
from pipeline.model.resources import RESOURCE_TYPES, Resources

API_VERSION = "core/v2"
DOCUMENT_KEYS = ("type", "api_version", "metadata", "spec")


#: How deep YAML may nest: far more than any resource needs, far less than Python's recursion limit.
MAX_YAML_DEPTH = 100
#: How many values one document may hold once its aliases are expanded (a resource file's check
#: with a thousand subscriptions holds about a thousand): nine anchors of nine aliases each
#: ("billion laughs") would otherwise be 387 million values to validate, serialise and send.
MAX_YAML_NODES = 100_000
MERGE_TAG = "tag:yaml.org,2002:merge"


class StrictLoader(yaml.SafeLoader):
    """The safe loader, refusing a key given twice in one mapping (YAML would keep the last), a
    key that is a list or a mapping, nesting deeper than :data:`MAX_YAML_DEPTH` (PyYAML composes
    recursively: a deep enough document would end in a RecursionError) and a document of more
    than :data:`MAX_YAML_NODES` values. Depth and size are counted with aliases expanded: an
    alias is cheap to parse but everything after the loader (validation, JSON) walks it whole."""

    _depth = 0
    _expanded: dict[int, tuple[int, int]]

    def compose_document(self) -> yaml.Node | None:
        self._expanded = {}  # id(node) -> (values, depth), aliases expanded; nodes live as long as the document
        return super().compose_document()

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
        if self.check_event(yaml.AliasEvent):
            node = super().compose_node(parent, index)
            if id(node) not in self._expanded:  # ``&a [*a]``: a structure that contains itself
                raise yaml.composer.ComposerError(None, None, "an alias inside the value it names", mark)
            return node
        if self._depth >= MAX_YAML_DEPTH:
            raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_YAML_DEPTH} levels", mark)
        self._depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if node is not None:
            self._measure(node, mark)
        return node

    def _measure(self, node: yaml.Node, mark: Any) -> None:
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        measured = [self._expanded[id(child)] for child in children]
        values = 1 + sum(size for size, _ in measured)
        depth = 1 + max((deep for _, deep in measured), default=0)
        if values > MAX_YAML_NODES:
            problem = f"more than {MAX_YAML_NODES} values with its aliases expanded"
            raise yaml.composer.ComposerError(None, None, problem, mark)
        if depth > MAX_YAML_DEPTH:
            problem = f"nested deeper than {MAX_YAML_DEPTH} levels with its aliases expanded"
            raise yaml.composer.ComposerError(None, None, problem, mark)
        self._expanded[id(node)] = (values, depth)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == MERGE_TAG:  # ``<<: *defaults``: the parent flattens it; its keys may be overridden
                continue
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, (list, dict, set)):
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark, "found a list or mapping as a key",
                    key_node.start_mark,
                )  # fmt: skip
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark, f"found duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def yaml_files(directory: Path) -> list[Path]:
    found = {p for pattern in ("*.yml", "*.yaml") for p in directory.rglob(pattern) if p.is_file()}
    return sorted(found)


class _Loader:
    def __init__(self) -> None:
        self.resources = Resources()
        self.errors: list[ConfigError] = []
        self._defined: dict[tuple[str, str, str], tuple[str, int]] = {}

    def load_file(self, path: Path) -> None:
        name = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            self.errors.append(ConfigError(name, f"cannot read: {exc}"))
            return
        number = 0
        try:
            for number, document in enumerate(yaml.load_all(text, Loader=StrictLoader), start=1):
                if document is not None:
                    self.load_document(name, number, document)
        except yaml.YAMLError as exc:
            self.errors.append(yaml_error(name, exc))
        except ValueError as exc:  # an integer of more than 4300 digits, which Python will not parse
            self.errors.append(ConfigError(name, f"invalid YAML: {exc}", document=number + 1))

    def load_document(self, file: str, number: int, document: Any) -> None:
        label = None
        try:
            kind, metadata = _envelope(document)
            label = f"{kind} {metadata.name!r}"
            resource = _resource(kind, metadata, document.get("spec"))
        except ValidationError as exc:
            self.errors.append(ConfigError(file, str(exc), document=number, resource=label))
            return
        key = (kind, metadata.namespace, metadata.name)
        label = f"{kind} {metadata.name!r}"
        if key in self._defined:
            other_file, other_number = self._defined[key]
            message = f"defined twice: also at {other_file}: document {other_number}"
            self.errors.append(ConfigError(file, message, document=number, resource=label))
            return
        self._defined[key] = (file, number)
        self.resources.add(resource)

    def check_references(self) -> None:
        for problem in self.resources.reference_errors():
            file, number = self._defined[(problem.kind, problem.namespace, problem.name)]
            self.errors.append(ConfigError(file, f"{problem.path}: {problem.message}", document=number,
                                           resource=f"{problem.kind} {problem.name!r}"))  # fmt: skip


def _envelope(document: Any) -> tuple[str, ObjectMeta]:
    """The resource kind and metadata of a document, checked."""
    if not isinstance(document, dict):
        raise ValidationError("", f"expected a mapping with {', '.join(DOCUMENT_KEYS)}, got {_kind(document)}")
    for key in document:
        if key not in DOCUMENT_KEYS:
            raise ValidationError(str(key), f"unknown field (expected {', '.join(DOCUMENT_KEYS)})")
    kind = document.get("type")
    # isinstance first: a list or mapping here is unhashable and would crash the dict lookup.
    if not isinstance(kind, str) or kind not in RESOURCE_TYPES:
        got = "nothing" if kind is None else repr(kind)
        raise ValidationError("type", f"expected one of {', '.join(RESOURCE_TYPES)}, got {got}")
    version = document.get("api_version")
    if version != API_VERSION:
        got = "nothing" if version is None else repr(version)
        raise ValidationError("api_version", f"expected {API_VERSION!r}, got {got}")
    metadata = decode(ObjectMeta, document.get("metadata") or {}, "metadata")
    if kind != "Silenced":  # a silence is named after what it silences (``*:disk``)
        validate_name(metadata.name, "metadata.name")
    metadata.namespace = metadata.namespace or DEFAULT_NAMESPACE
    return kind, metadata


def _resource(kind: str, metadata: ObjectMeta, spec: Any) -> Any:
    """The resource decoded from its spec, with its metadata, validated."""
    if not isinstance(spec, dict):
        raise ValidationError("spec", f"expected a mapping, got {_kind(spec)}")
    if "metadata" in spec:
        raise ValidationError("spec.metadata", "unknown field (metadata belongs at the top level)")
    resource = decode(RESOURCE_TYPES[kind], spec, "spec")
    resource.metadata = metadata
    if isinstance(resource, CheckConfig) and "publish" not in spec:
        # A check with a schedule is meant to run; Sensu Go would silently never schedule it.
        resource.publish = bool(resource.interval or resource.cron)
    resource.validate("spec")
    if isinstance(resource, Silenced):
        resource.metadata.name = resource.derived_name
    if isinstance(resource, EventFilter):
        CompiledFilter.of(resource)  # an expression that does not parse is a config error
    if isinstance(resource, Mutator) and resource.kind == "template":
        compile_template(resource.template, "spec.template")
    if isinstance(resource, CheckConfig) and resource.cron:
        try:
            parse_cron(resource.cron)
        except ScheduleError as exc:
            raise ValidationError("spec.cron", str(exc)) from None
    return resource


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    names: dict[type, str] = {dict: "a mapping", list: "a list", str: "a string"}
    return names.get(type(value), type(value).__name__)


def yaml_error(file: str, exc: yaml.YAMLError) -> ConfigError:
    """One line naming the file, the line and the problem (PyYAML's own text quotes the source)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    message = f"invalid YAML: {context + ', ' if context else ''}{problem}"
    return ConfigError(file, message, line=mark.line + 1 if mark is not None else None)


def resource_from_document(document: Any) -> Any:
    """One resource from a ``{type, api_version, metadata, spec}`` document, validated on its own
    (raises ValidationError naming the field)."""
    kind, metadata = _envelope(document)
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
    loader = _Loader()
    for path in yaml_files(directory):
        loader.load_file(path)
    if not loader.errors:
        loader.check_references()
    if loader.errors:
        raise ConfigErrors(loader.errors)
    return loader.resources

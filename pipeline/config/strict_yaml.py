"""PyYAML's safe loader made strict and bounded for resource and settings files."""

from __future__ import annotations

from typing import Any

import yaml

from pipeline.errors import ConfigError

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


def yaml_error(file: str, exc: yaml.YAMLError) -> ConfigError:
    """One line naming the file, the line and the problem (PyYAML's own text quotes the source)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    message = f"invalid YAML: {context + ', ' if context else ''}{problem}"
    return ConfigError(file, message, line=mark.line + 1 if mark is not None else None)


def _timestamp_as_text(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    # As Sensu Go's YAML reader does: an unquoted timestamp (a subdue's begin) stays its text.
    return loader.construct_scalar(node)  # type: ignore[arg-type]


StrictLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_as_text)


def _unless_base_60(construct: Any) -> Any:
    """``construct`` (YAML 1.1's int or float), except for a base-60 number: ``1:30`` is 90 to
    PyYAML, and text to Sensu Go's reader (go-yaml: "base 60 floats are a bad idea ... purposefully
    unsupported"), so that ``interval: 1:30`` is refused there as a string; here too."""

    def constructor(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
        if isinstance(node.value, str) and ":" in node.value:
            return loader.construct_scalar(node)  # type: ignore[arg-type]
        return construct(loader, node)

    return constructor


StrictLoader.add_constructor("tag:yaml.org,2002:int", _unless_base_60(yaml.SafeLoader.construct_yaml_int))
StrictLoader.add_constructor("tag:yaml.org,2002:float", _unless_base_60(yaml.SafeLoader.construct_yaml_float))

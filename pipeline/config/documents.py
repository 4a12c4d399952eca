"""Reading resource files into documents, each with where it came from.

A file holds YAML documents (``---`` between them) or JSON: Sensu's wrapped JSON objects one
after another, as ``sensuctl dump --format wrapped-json`` writes them, or a JSON list of them.
A directory is every ``*.yml``, ``*.yaml`` and ``*.json`` file below it, in sorted order. Each
document keeps its file, its number in the file (1-based) and, for YAML, its node tree, so that
an error about a field can name the line the field is on (:func:`line_of`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pipeline.config.strict_yaml import StrictLoader, yaml_error
from pipeline.errors import ConfigError

#: What a directory's files may be called (sensuctl create reads the same).
PATTERNS = ("*.yml", "*.yaml", "*.json")
#: A path segment of a field path: ``spec``, ``workflows[0]``.
_SEGMENT = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


@dataclass(slots=True)
class Document:
    """One document of a file: ``number`` counts from 1 in its file, ``line`` is where it starts."""

    file: str
    number: int
    line: int
    data: Any
    node: yaml.Node | None = None


def resource_files(path: Path) -> list[Path]:
    """``path`` itself if it is a file, else the resource files below it, sorted."""
    if not path.is_dir():
        return [path]
    found = {p for pattern in PATTERNS for p in path.rglob(pattern) if p.is_file()}
    return sorted(found)


def read_documents(path: Path) -> tuple[list[Document], list[ConfigError]]:
    """Every document of a file or a directory, and the files that could not be read or parsed."""
    documents: list[Document] = []
    errors: list[ConfigError] = []
    for found, error in read_files(path):
        documents.extend(found)
        errors.extend([error] if error is not None else [])
    return documents, errors


def read_files(path: Path) -> list[tuple[list[Document], ConfigError | None]]:
    """For each file of ``path`` in order, its documents and what stopped its reading, if anything."""
    if not path.exists():
        return [([], ConfigError(str(path), "no such file or directory"))]
    return [read_file(file) for file in resource_files(path)]


def read_file(file: Path) -> tuple[list[Document], ConfigError | None]:
    """The documents of one file (up to its first syntax error, returned beside them)."""
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [], ConfigError(str(file), f"cannot read: {exc}")
    if file.suffix == ".json":
        return read_json(str(file), text)
    documents, error = read_yaml(str(file), text)
    if error is not None and not documents and text.lstrip()[:1] in ("{", "["):
        # Wrapped JSON objects one after another are not YAML (one root node each): JSON, then.
        json_documents, json_error = read_json(str(file), text)
        if json_error is None:
            return json_documents, None
    return documents, error


def read_yaml(file: str, text: str) -> tuple[list[Document], ConfigError | None]:
    """The documents of a YAML text, up to the first error (returned beside them)."""
    documents: list[Document] = []
    loader = StrictLoader(text)
    number = 0
    try:
        while loader.check_node():
            node = loader.get_node()
            number += 1
            data = loader.construct_document(node) if node is not None else None
            if data is not None:
                assert node is not None
                documents.append(Document(file, number, node.start_mark.line + 1, data, node))
    except yaml.YAMLError as exc:
        return documents, yaml_error(file, exc)
    except ValueError as exc:  # an integer of more than 4300 digits, which Python will not parse
        return documents, ConfigError(file, f"invalid YAML: {exc}", document=number or 1)
    finally:
        loader.dispose()
    return documents, None


def read_json(file: str, text: str) -> tuple[list[Document], ConfigError | None]:
    """Wrapped JSON objects one after another, or one JSON list of them."""
    decoder = json.JSONDecoder()
    documents: list[Document] = []
    position = _skip_space(text, 0)
    try:
        while position < len(text):
            value, end = decoder.raw_decode(text, position)
            line = text.count("\n", 0, position) + 1
            if isinstance(value, list) and not documents and _skip_space(text, end) == len(text):
                documents = [Document(file, i, line, item) for i, item in enumerate(value, start=1)]
            else:
                documents.append(Document(file, len(documents) + 1, line, value))
            position = _skip_space(text, end)
    except json.JSONDecodeError as exc:
        return documents, ConfigError(file, f"invalid JSON: {exc.msg} (column {exc.colno})", line=exc.lineno)
    except (ValueError, RecursionError) as exc:  # over 4300 digits; nested past Python's limit
        return documents, ConfigError(file, f"invalid JSON: {exc}", line=text.count("\n", 0, position) + 1)
    return documents, None


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position


def line_of(document: Document, path: str) -> int:
    """The line of the field at ``path`` (``spec.workflows[0].handler``) in the document: the
    deepest part of the path that the document has (a missing field: the mapping that lacks it)."""
    node = document.node
    if node is None:
        return document.line
    line = node.start_mark.line + 1
    for key, index in _SEGMENT.findall(path):
        found = _child(node, key, index)
        if found is None:
            break
        node, line = found
    return line


def _child(node: yaml.Node, key: str, index: str) -> tuple[yaml.Node, int] | None:
    """The node under ``node`` at ``key`` or ``index``, and its line (a key's own line for a key)."""
    if index and isinstance(node, yaml.SequenceNode):
        position = int(index)
        if position < len(node.value):
            return node.value[position], node.value[position].start_mark.line + 1
    if key and isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
                return value_node, key_node.start_mark.line + 1
    return None

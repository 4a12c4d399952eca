"""Asset filters: which build of an asset applies to a host. Pure.

Sensu Go's asset filters are JavaScript expressions over the entity (``entity.system.os ==
'linux'``). Until pipeline evaluates JavaScript, this evaluates exactly the forms Sensu Go's
documentation uses and refuses at load everything else, so that no filter is evaluated with a
meaning JavaScript would not give it:

    filter     := conjunct ('||' conjunct)*
    conjunct   := comparison ('&&' comparison)*
    comparison := operand ('==' | '===' | '!=' | '!==') operand
    operand    := 'single' or "double" quoted string (no escapes) | entity path

An entity path is ``entity.`` followed by one of the entity's string fields (``name``,
``namespace``, ``entity_class``, ``system.os``, ``system.arch``, ``system.platform``, ...) or a
label or annotation (``entity.labels.region``, ``entity.labels['region']``). Every operand is a
string or ``undefined`` (an absent label), so ``==`` and ``===`` mean the same, and a missing
label compares unequal to every string, as in JavaScript.

:func:`compile_asset_filter` and :func:`matches` are the one seam: the JavaScript engine
replaces them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

#: The entity's string fields a filter may read, as Sensu Go synthesises the entity (metadata
#: fields at the top level).
STRING_FIELDS = frozenset({
    "name", "namespace", "entity_class", "user",
    "system.hostname", "system.os", "system.platform", "system.platform_family", "system.platform_version",
    "system.arch", "system.libc_type", "system.vm_system", "system.vm_role", "system.cloud_provider",
})  # fmt: skip
MAX_FILTER_LENGTH = 1000
FORMS = "strings, entity fields, ==, !=, &&, ||"

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<op>===|!==|==|!=|&&|\|\|)
      | '(?P<sq>[^'\\\n]*)'
      | "(?P<dq>[^"\\\n]*)"
      | (?P<path>entity(?:\.[A-Za-z_]\w*|\[\s*'[^'\\\n]*'\s*\]|\[\s*"[^"\\\n]*"\s*\])+)
    )""",
    re.VERBOSE,
)
_KEY = re.compile(r"""\.([A-Za-z_]\w*)|\[\s*['"]([^'"]*)['"]\s*\]""")

Operand = Callable[[Mapping[str, Any]], str | None]


class AssetFilterError(ValueError):
    """A filter this evaluator cannot evaluate exactly (``position``: where, in characters)."""

    def __init__(self, text: str, position: int, reason: str) -> None:
        self.text, self.position, self.reason = text, position, reason
        super().__init__(f"{reason} at character {position + 1} of {text[:200]!r}")


@dataclass(slots=True, frozen=True)
class CompiledAssetFilter:
    """A filter as alternatives of conjunctions of comparisons."""

    text: str
    alternatives: tuple[tuple[tuple[Operand, bool, Operand], ...], ...]

    def __call__(self, entity: Mapping[str, Any]) -> bool:
        return any(all((a(entity) == b(entity)) == equal for a, equal, b in conj) for conj in self.alternatives)


def compile_asset_filter(text: str) -> CompiledAssetFilter:
    """Parse one filter (raises AssetFilterError naming what it cannot evaluate)."""
    if len(text) > MAX_FILTER_LENGTH:
        raise AssetFilterError(text, MAX_FILTER_LENGTH, f"longer than {MAX_FILTER_LENGTH} characters")
    tokens = _tokens(text)
    alternatives, conj, i = [], [], 0
    while True:
        if i + 3 > len(tokens):
            raise AssetFilterError(text, tokens[i][0] if i < len(tokens) else len(text), "expected a comparison")
        (pa, left), (po, op), (pb, right) = tokens[i : i + 3]
        if callable(op) or op not in ("==", "===", "!=", "!=="):
            raise AssetFilterError(text, po, "expected ==, ===, != or !==")
        if not callable(left) or not callable(right):
            raise AssetFilterError(text, pa if not callable(left) else pb, "expected a string or an entity field")
        conj.append((left, op in ("==", "==="), right))
        i += 3
        if i == len(tokens):
            alternatives.append(tuple(conj))
            return CompiledAssetFilter(text, tuple(alternatives))
        position, joiner = tokens[i]
        if joiner == "||":
            alternatives.append(tuple(conj))
            conj = []
        elif joiner != "&&":
            raise AssetFilterError(text, position, "expected && or ||")
        i += 1


def _tokens(text: str) -> list[tuple[int, str | Operand]]:
    tokens: list[tuple[int, str | Operand]] = []
    position = 0
    while text[position:].strip():
        match = _TOKEN.match(text, position)
        if match is None:
            start = len(text) - len(text[position:].lstrip())
            raise AssetFilterError(text, start, f"not a form pipeline evaluates ({FORMS})")
        start = match.start(match.lastgroup or 0)
        if match["op"] is not None:
            tokens.append((start, match["op"]))
        elif match["path"] is not None:
            tokens.append((start, _path_operand(text, start, match["path"])))
        else:
            literal = match["sq"] if match["sq"] is not None else match["dq"]
            tokens.append((start, _constant(literal)))
        position = match.end()
    return tokens


def _constant(value: str) -> Operand:
    return lambda entity: value


def _path_operand(text: str, position: int, path: str) -> Operand:
    keys = [m[1] or m[2] for m in _KEY.finditer(path, len("entity"))]
    if len(keys) == 2 and keys[0] in ("labels", "annotations"):
        group, key = keys
        return lambda entity: _string((entity.get(group) or {}).get(key))
    dotted = ".".join(keys)
    if dotted not in STRING_FIELDS:
        raise AssetFilterError(text, position, f"entity.{dotted} is not an entity string field pipeline evaluates")
    return lambda entity: _lookup(entity, keys)


def _lookup(entity: Mapping[str, Any], keys: list[str]) -> str | None:
    value: Any = entity
    for key in keys:
        value = value.get(key) if isinstance(value, Mapping) else None
    return _string(value)


def _string(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def synthesize(entity: Mapping[str, Any]) -> dict[str, Any]:
    """The entity as Sensu Go's filters see it: its JSON with the metadata fields at the top."""
    metadata = entity.get("metadata", {})
    return {**entity, **{k: metadata.get(k) for k in ("name", "namespace", "labels", "annotations")}}


def matches(filters: list[str], entity: Mapping[str, Any]) -> bool:
    """Whether every filter is true of ``entity`` (the JSON of an Entity); no filters: true."""
    synthesized = synthesize(entity)
    return all(compile_asset_filter(text)(synthesized) for text in filters)

"""Sensu Go's ``labelSelector`` and ``fieldSelector``: parse the query text, match a resource.

The grammar and the matching follow Sensu Go's ``backend/selector`` package (lexer.go, parser.go,
selector.go) and the field names its ``*Fields`` functions give each kind (the "Field selector"
table of Sensu's API documentation)::

    selector   := [ condition { ["&&"] condition } ]      (Sensu also takes two conditions side by side)
    condition  := key op value | key ("in"|"notin") (identifier | "[" { item | "," } "]")
    key        := identifier | string
    op         := "==" | "!=" | "matches"
    value      := identifier | string | "true" | "false" | "matches"
    item       := identifier | string
    identifier := (letter | "_") { letter | digit | "_" | "." | "/" }    (no trailing ".")
    string     := ("\\"" | "'") { any but a quote } ("\\"" | "'")       (either quote ends it)

An identifier ends at a blank or at one of ``[ ] ! & , " '``; ``in``, ``notin``, ``matches``,
``true`` and ``false`` are words (any case) only when a blank or the end follows them, so the
operators need blanks around them (``a==b`` is refused, as by Sensu).

Matching, as Sensu's: ``value in field`` (one value naming a field that the resource has) asks
whether the value is one of the field's items; otherwise ``in`` is ``==`` against the list.
``==``/``in``/``matches`` are false when the resource lacks the key, ``!=``/``notin`` true.
``matches`` is substring containment. A list field compares as its items joined by commas.

Unlike Sensu (which then matches nothing), a field selector naming a field the kind does not
have is refused, so the API can answer 400 naming it. Label keys are free.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.errors import SelectorError

FieldValue = str | list[str]

OPERATORS = ("==", "!=", "in", "notin", "matches")
_WORDS = {"in": "in", "notin": "notin", "matches": "matches", "true": "bool", "false": "bool"}
_ENDS_IDENTIFIER = frozenset("[]!&,\"'")
# Go's unicode.IsSpace: these Latin-1 blanks, and the White_Space characters beyond Latin-1
_LATIN1_SPACE = frozenset("\t\n\v\f\r \x85\xa0")

# Sensu's resource prefix per pipeline kind, and the fields of its "Field selector" table
PREFIXES: dict[str, str] = {
    "Asset": "asset",
    "CheckConfig": "check",
    "Entity": "entity",
    "Event": "event",
    "EventFilter": "filter",
    "Handler": "handler",
    "HookConfig": "hook",
    "Mutator": "mutator",
    "Namespace": "namespace",
    "Pipeline": "pipeline",
    "Silenced": "silenced",
}
_FIELDS: dict[str, tuple[str, ...]] = {
    "Asset": ("name", "namespace", "filters"),
    "CheckConfig": ("name", "namespace", "handlers", "publish", "round_robin", "runtime_assets", "subscriptions"),
    "Entity": ("name", "namespace", "deregister", "entity_class", "subscriptions"),
    "Event": (
        "name",
        "namespace",
        "is_silenced",
        "check.handlers",
        "check.is_silenced",
        "check.name",
        "check.publish",
        "check.round_robin",
        "check.runtime_assets",
        "check.state",
        "check.status",
        "check.subscriptions",
        "entity.deregister",
        "entity.entity_class",
        "entity.name",
        "entity.subscriptions",
    ),
    "EventFilter": ("name", "namespace", "action", "runtime_assets"),
    "Handler": ("name", "namespace", "filters", "handlers", "mutator", "type"),
    "HookConfig": ("name", "namespace"),
    "Mutator": ("name", "namespace", "runtime_assets"),
    "Namespace": ("name",),
    "Pipeline": ("name", "namespace"),
    "Silenced": ("name", "namespace", "check", "creator", "expire_on_resolve", "subscription"),
}
_BOOLEANS = frozenset({"publish", "round_robin", "deregister", "expire_on_resolve"})
_LISTS = frozenset({"filters", "handlers", "runtime_assets", "subscriptions"})
# Sensu's Namespace fields carry no labels
_UNLABELLED = frozenset({"Namespace"})


def supported_fields(kind: str) -> tuple[str, ...]:
    """The field names a ``fieldSelector`` may use for ``kind`` (besides ``<prefix>.labels.<key>``)."""
    prefix = _prefix(kind)
    return tuple(f"{prefix}.{name}" for name in _FIELDS[kind])


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "[", "]", ",", "==", "!=", "&&", "in", "notin", "matches", "bool", "ident", "string", "end"
    value: str
    position: int

    def shown(self) -> str:
        if self.kind == "end":
            return "the end"
        return repr(self.value[:40]) + ("..." if len(self.value) > 40 else "")


@dataclass(frozen=True, slots=True)
class Operation:
    """One condition: ``key operator values``."""

    key: str
    operator: str
    values: tuple[str, ...]

    def matches(self, fields: Mapping[str, FieldValue]) -> bool:
        operator = self.operator
        if operator in ("in", "notin") and len(self.values) == 1 and self.values[0] in fields:
            # ``linux in check.subscriptions``: the key is the value, the one value the field
            found = self.key in _items(fields[self.values[0]])
            return found if operator == "in" else not found
        if operator in ("==", "in"):
            return self.key in fields and _text(fields[self.key]) in self.values
        if operator in ("!=", "notin"):
            return self.key not in fields or _text(fields[self.key]) not in self.values
        # matches: substring containment
        return self.key in fields and any(value in _text(fields[self.key]) for value in self.values)


@dataclass(frozen=True, slots=True)
class Selector:
    """The conditions of one selector, all of which must hold (no condition: everything matches)."""

    operations: tuple[Operation, ...]

    def matches(self, fields: Mapping[str, FieldValue]) -> bool:
        return all(operation.matches(fields) for operation in self.operations)


def parse_label_selector(text: str) -> Selector:
    """A ``labelSelector``, matched against a resource's ``metadata.labels`` (see :func:`labels_of`)."""
    return Selector(tuple(_parse(text, "labelSelector")))


def parse_field_selector(text: str, kind: str) -> Selector:
    """A ``fieldSelector`` for resources of ``kind``, matched against :func:`fields_of`.

    Every condition must name a field of ``kind``: its key, or for ``in``/``notin`` its one value.
    ``labels.<key>`` is taken for ``<prefix>.labels.<key>``.
    """
    prefix = _prefix(kind)
    known = frozenset(supported_fields(kind))
    operations = []
    for operation, position in _parse(text, "fieldSelector", positions=True):
        operations.append(_resolve_fields(operation, position, text, kind, prefix, known))
    return Selector(tuple(operations))


def labels_of(document: Mapping[str, Any]) -> dict[str, FieldValue]:
    """What a label selector sees of a resource in Sensu's v2 JSON: its ``metadata.labels``."""
    return _labels(_metadata(_body(document)))


def fields_of(kind: str, document: Mapping[str, Any]) -> dict[str, FieldValue]:
    """What a field selector sees of a resource of ``kind`` in Sensu's v2 JSON (flat or wrapped).

    Values are strings as Sensu renders them (booleans ``true``/``false``, a status in decimal)
    or lists of strings; labels appear as ``<prefix>.labels.<key>``.
    """
    prefix = _prefix(kind)
    body = _body(document)
    metadata = _metadata(body)
    # a core/v2 Namespace is only ``{"name": ...}``: no metadata, no namespace of its own
    name = body.get("name") if kind == "Namespace" else metadata.get("name")
    fields: dict[str, FieldValue] = {f"{prefix}.name": _str(name)}
    if kind != "Namespace":
        fields[f"{prefix}.namespace"] = _str(metadata.get("namespace"))
    labels = _labels(metadata)
    if kind == "Event":
        fields.update(_event_fields(body))
        # Sensu merges the event's, then the entity's, then the check's labels (the last wins)
        labels |= _labels(_metadata(_map(body.get("entity")))) | _labels(_metadata(_map(body.get("check"))))
    elif kind == "Silenced":
        fields.update(_silenced_fields(body, metadata))
    else:
        for name in _FIELDS[kind]:
            if name not in ("name", "namespace"):
                fields[f"{prefix}.{name}"] = _value(name, body.get(name))
    if kind not in _UNLABELLED:
        fields.update({f"{prefix}.labels.{key}": value for key, value in labels.items()})
    return fields


def matches_document(
    kind: str, document: Mapping[str, Any], *, labels: Selector | None = None, fields: Selector | None = None
) -> bool:
    """Whether a resource passes both selectors (either may be absent), as a list route asks."""
    if labels is not None and not labels.matches(labels_of(document)):
        return False
    return fields is None or fields.matches(fields_of(kind, document))


# --- parsing ---------------------------------------------------------------------------------


def _parse(text: str, path: str, positions: bool = False) -> list[Any]:
    tokens = _tokens(text, path)
    found: list[Any] = []
    index = 0
    while True:
        token = tokens[index]
        if token.kind in ("ident", "string"):
            operation, index = _operation(tokens, index, text, path)
            found.append((operation, token.position) if positions else operation)
        elif token.kind == "&&":
            if not found:
                raise SelectorError(path, text, token.position, "'&&' before any condition")
            index += 1
            following = tokens[index]
            if following.kind not in ("ident", "string"):
                raise SelectorError(
                    path, text, following.position, f"expected a condition after '&&', got {following.shown()}"
                )
        elif token.kind == "end":
            return found
        else:
            raise SelectorError(path, text, token.position, f"expected a label or field name, got {token.shown()}")


def _operation(tokens: list[_Token], index: int, text: str, path: str) -> tuple[Operation, int]:
    key, operator = tokens[index], tokens[index + 1]
    if operator.kind not in OPERATORS:
        # 'in[' is a name to Sensu's lexer: an operator word needs a blank after it
        hint = " (a blank must follow it)" if operator.value.lower() in _WORDS else ""
        raise SelectorError(
            path, text, operator.position, f"expected ==, !=, in, notin or matches, got {operator.shown()}{hint}"
        )
    value = tokens[index + 2]
    index += 3
    if operator.kind not in ("in", "notin"):
        if value.kind not in ("ident", "string", "bool", "matches"):
            raise SelectorError(
                path, text, value.position, f"expected a value after {operator.value!r}, got {value.shown()}"
            )
        return Operation(key.value, operator.kind, (value.value,)), index
    if value.kind == "ident":
        return Operation(key.value, operator.kind, (value.value,)), index
    if value.kind != "[":
        raise SelectorError(
            path, text, value.position, f"expected '[' or a field name after {operator.value!r}, got {value.shown()}"
        )
    items: list[str] = []
    while True:
        item = tokens[index]
        index += 1
        if item.kind in ("ident", "string"):
            items.append(item.value)
        elif item.kind == "]":
            return Operation(key.value, operator.kind, tuple(items)), index
        elif item.kind != ",":  # Sensu skips commas wherever they stand in a list
            raise SelectorError(path, text, item.position, f"expected a value, ',' or ']', got {item.shown()}")


def _resolve_fields(
    operation: Operation, position: int, text: str, kind: str, prefix: str, known: frozenset[str]
) -> Operation:
    def field(name: str) -> str | None:
        if name.startswith("labels.") and kind not in _UNLABELLED:
            name = f"{prefix}.{name}"
        if name in known or (name.startswith(f"{prefix}.labels.") and kind not in _UNLABELLED):
            return name
        return None

    values = operation.values
    if operation.operator in ("in", "notin") and len(values) == 1 and (named := field(values[0])) is not None:
        return Operation(operation.key, operation.operator, (named,))
    if (named := field(operation.key)) is not None:
        return Operation(named, operation.operator, values)
    fields = ", ".join(supported_fields(kind))
    if operation.operator in ("in", "notin") and len(values) == 1:
        message = f"neither {operation.key!r} nor {values[0]!r} is a field of {kind} ({fields})"
    else:
        message = f"{operation.key!r} is not a field of {kind} ({fields})"
    raise SelectorError("fieldSelector", text, position, message)


# --- lexing (Sensu's lexer.go) ---------------------------------------------------------------


def _tokens(text: str, path: str) -> list[_Token]:
    tokens: list[_Token] = []
    index = 0
    while True:
        token, index = _next_token(text, index, path)
        tokens.append(token)
        if token.kind == "end":
            return tokens


def _next_token(text: str, index: int, path: str) -> tuple[_Token, int]:
    end = len(text)
    while index < end and _is_space(text[index]):
        index += 1
    if index == end:
        return _Token("end", "", end), end
    char = text[index]
    if char in "[],":
        return _Token(char, char, index), index + 1
    if char in "=!&":
        pair = char + ("&" if char == "&" else "=")
        if text.startswith(pair, index):
            return _Token(pair, pair, index), index + 2
        raise SelectorError(path, text, index, f"expected {pair!r}")
    if char in "\"'":
        close = index + 1
        while close < end and text[close] not in "\"'":
            close += 1
        if close == end:
            raise SelectorError(path, text, index, "unterminated string")
        return _Token("string", text[index + 1 : close], index), close + 1
    number = _NUMBER.match(text, index)
    if number is not None:
        # A bare number is a value, as Sensu's clients send one (the sensu-go PyPI client
        # writes ``event.check.status == 2``): the same as the quoted "2".
        return _Token("string", number.group(), index), number.end()
    if not _identifier_start(char):
        raise SelectorError(path, text, index, f"unexpected character {char!r}")
    return _identifier(text, index, path)


#: A bare number: ASCII digits, a sign and a decimal part, then a blank, a bracket, a comma or the end.
_NUMBER = re.compile(r"[-+]?[0-9]+(?:\.[0-9]+)?(?=[\s\],]|\Z)", re.ASCII)


def _identifier(text: str, start: int, path: str) -> tuple[_Token, int]:
    end = len(text)
    index = start + 1
    after_dot = False
    while index < end:
        char = text[index]
        if after_dot:
            # Sensu's lexer goes back to its start state after a dot: blanks are skipped there
            if _is_space(char):
                index += 1
                continue
            if not _identifier_start(char):
                raise SelectorError(path, text, index, f"expected a letter or '_' after '.', got {char!r}")
            after_dot = False
        elif _is_space(char):
            break
        elif char in _ENDS_IDENTIFIER:
            # Sensu returns the identifier here without looking it up among the words
            return _Token("ident", _squeezed(text[start:index]), start), index
        elif char == ".":
            after_dot = True
        elif not _identifier_tail(char):
            raise SelectorError(path, text, index, f"unexpected character {char!r} in a name")
        index += 1
    if after_dot:
        raise SelectorError(path, text, index, "a name ends with '.'")
    word = _squeezed(text[start:index])
    kind = _WORDS.get(word.lower())
    if kind is None:
        return _Token("ident", word, start), index
    return _Token(kind, word.lower(), start), index


def _squeezed(word: str) -> str:
    """The name without the blanks Sensu's lexer skips after a dot (``check. name``)."""
    return "".join(char for char in word if not _is_space(char))


def _is_space(char: str) -> bool:
    if char < "\u0100":
        return char in _LATIN1_SPACE
    return unicodedata.category(char) in ("Zs", "Zl", "Zp")


def _identifier_start(char: str) -> bool:
    return char == "_" or char.isalpha()


def _identifier_tail(char: str) -> bool:
    # Go's unicode.IsDigit is category Nd; str.isdigit also takes superscripts
    return char in "_./" or char.isalpha() or unicodedata.category(char) == "Nd"


# --- fields of a document --------------------------------------------------------------------


def _prefix(kind: str) -> str:
    try:
        return PREFIXES[kind]
    except KeyError:
        raise ValueError(f"no selectable fields for kind {kind!r}") from None


def _event_fields(event: Mapping[str, Any]) -> dict[str, FieldValue]:
    check, entity = _map(event.get("check")), _map(event.get("entity"))
    silenced = "true" if _silenced(event, check) else "false"
    status = check.get("status")
    return {
        "event.is_silenced": silenced,
        "event.check.is_silenced": silenced,
        "event.check.name": _str(_metadata(check).get("name")),
        "event.check.handlers": _strs(check.get("handlers")),
        "event.check.publish": _bool(check.get("publish")),
        "event.check.round_robin": _bool(check.get("round_robin")),
        "event.check.runtime_assets": _strs(check.get("runtime_assets")),
        "event.check.state": _str(check.get("state")),
        "event.check.status": str(status) if isinstance(status, int) and not isinstance(status, bool) else "0",
        "event.check.subscriptions": _strs(check.get("subscriptions")),
        "event.entity.deregister": _bool(entity.get("deregister")),
        "event.entity.name": _str(_metadata(entity).get("name")),
        "event.entity.entity_class": _str(entity.get("entity_class")),
        "event.entity.subscriptions": _strs(entity.get("subscriptions")),
    }


def _silenced(event: Mapping[str, Any], check: Mapping[str, Any]) -> bool:
    # Sensu: silenced when check.silenced names any silence; pipeline also sets is_silenced
    return bool(_strs(check.get("silenced"))) or check.get("is_silenced") is True or event.get("is_silenced") is True


def _silenced_fields(body: Mapping[str, Any], metadata: Mapping[str, Any]) -> dict[str, FieldValue]:
    check, subscription = _str(body.get("check")), _str(body.get("subscription"))
    # a silence's name is subscription:check, each '*' when absent, when the document has none
    name = _str(metadata.get("name")) or f"{subscription or '*'}:{check or '*'}"
    return {
        "silenced.name": name,
        "silenced.check": check,
        "silenced.creator": _str(body.get("creator")),
        "silenced.expire_on_resolve": _bool(body.get("expire_on_resolve")),
        "silenced.subscription": subscription,
    }


def _body(document: Mapping[str, Any]) -> Mapping[str, Any]:
    """The flat form of a resource: the wrapped form's ``spec`` with its ``metadata``."""
    spec = document.get("spec")
    if isinstance(spec, Mapping) and "type" in document:
        return {**spec, "metadata": document.get("metadata", spec.get("metadata"))}
    return document


def _map(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _metadata(body: Mapping[str, Any]) -> Mapping[str, Any]:
    return _map(body.get("metadata"))


def _labels(metadata: Mapping[str, Any]) -> dict[str, FieldValue]:
    labels = _map(metadata.get("labels"))
    return {key: value for key, value in labels.items() if isinstance(key, str) and isinstance(value, str)}


def _value(name: str, value: object) -> FieldValue:
    if name in _BOOLEANS:
        return _bool(value)
    if name in _LISTS:
        return _strs(value)
    return _str(value)


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _strs(value: object) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def _bool(value: object) -> str:
    return "true" if value is True else "false"


def _text(value: FieldValue) -> str:
    return value if isinstance(value, str) else ",".join(value)


def _items(value: FieldValue) -> Iterable[str]:
    if isinstance(value, list):
        return value
    # Sensu's split(): brackets trimmed, then comma-separated items with their blanks trimmed
    return [item.strip() for item in value.strip("[]").split(",")]

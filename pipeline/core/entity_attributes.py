"""Which entities a proxy check runs for: ``proxy_requests.entity_attributes``. Pure.

Sensu Go evaluates each expression as JavaScript over the entity (``entity.entity_class ==
'proxy'``, ``entity.labels.region === 'eu'``); an entity matches when every expression is true.
:func:`compile_entity_attributes` is the one place that turns the expressions into an
:data:`EntityMatcher`. Until pipeline embeds a JavaScript engine it understands the forms
Sensu's documentation uses, and evaluates them with JavaScript's exact semantics:

    entity.<path> OP literal        OP: ==  !=  ===  !==
    <path>: .name, ['quoted'] or [index] segments (entity.labels['app-tier'], entity.subscriptions[0])
    literal: 'text' or "text" (no escapes), a decimal number, true, false, null

Anything else is refused when the check is loaded, naming the expression, rather than being
evaluated approximately. An expression that fails on one entity as JavaScript would (a
property read of ``undefined``, as ``entity.system.missing.x``) makes that entity not match
(Sensu Go skips it) and is reported through the :class:`EntityMatchError` it raises.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.core.tokens import entity_scope
from pipeline.errors import ValidationError

#: An entity's Sensu JSON (as stored) -> whether the check runs for it. May raise EntityMatchError.
EntityMatcher = Callable[[Mapping[str, Any]], bool]


class EntityMatchError(ValueError):
    """An expression failed on one entity (as a JavaScript TypeError would); the message says why."""


class _Undefined:
    """JavaScript's ``undefined``: what a missing property reads as."""

    def __repr__(self) -> str:
        return "undefined"


UNDEFINED: Any = _Undefined()

_SEGMENT = r"(?:\.[A-Za-z_$][\w$]*|\[\s*(?:'[^'\\]*'|\"[^\"\\]*\"|0|[1-9]\d*)\s*\])"
_NUMBER = r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_LITERAL = rf"'[^'\\\n]*'|\"[^\"\\\n]*\"|{_NUMBER}|true|false|null"
_FORM = re.compile(rf"\s*entity(?P<path>(?:\s*{_SEGMENT})+)\s*(?P<op>===|!==|==|!=)\s*(?P<literal>{_LITERAL})\s*\Z")
_PARTS = re.compile(r"\.([A-Za-z_$][\w$]*)|\[\s*(?:'([^']*)'|\"([^\"]*)\"|(\d+))\s*\]")


@dataclass(slots=True, frozen=True)
class _Comparison:
    text: str
    path: tuple[str, ...]
    op: str
    literal: Any

    def __call__(self, entity: Mapping[str, Any]) -> bool:
        value = _read(entity, self.path, self.text)
        equal = _strict_equal(value, self.literal) if self.op in ("===", "!==") else _loose_equal(value, self.literal)
        return equal if self.op in ("==", "===") else not equal


def compile_entity_attributes(
    expressions: Sequence[str], path: str = "proxy_requests.entity_attributes"
) -> EntityMatcher:
    """The matcher of ``expressions`` (all must hold); a ValidationError names ``path[i]`` for an
    expression this evaluator cannot evaluate exactly."""
    comparisons = [_compile_one(text, f"{path}[{i}]") for i, text in enumerate(expressions)]

    def matches(entity: Mapping[str, Any]) -> bool:
        view = synthesize_entity(entity)
        return all(comparison(view) for comparison in comparisons)

    return matches


def synthesize_entity(entity: Mapping[str, Any]) -> dict[str, Any]:
    """The entity as expressions see it: its JSON with ``name``, ``namespace``, ``labels`` and
    ``annotations`` lifted from ``metadata`` to the top, as Sensu Go synthesizes it."""
    return entity_scope(entity)


def _compile_one(text: str, path: str) -> _Comparison:
    if not isinstance(text, str):
        raise ValidationError(path, f"expected a string, got {type(text).__name__}")
    parsed = _FORM.match(text)
    if parsed is None:
        raise ValidationError(
            path,
            f"cannot evaluate {text!r} exactly: pipeline evaluates entity.<path> ==, !=, === or !== a quoted"
            " string, a number, true, false or null (JavaScript expressions arrive with its JavaScript engine)",
        )
    parts = tuple("".join(groups) for groups in _PARTS.findall(parsed.group("path")))
    inherited = [part for part in parts if part in _INHERITED]
    if inherited:
        raise ValidationError(path, f"cannot evaluate {text!r} exactly: {inherited[0]!r} is a property every"
                                    " JavaScript object inherits")  # fmt: skip
    return _Comparison(text, parts, parsed.group("op"), _literal(parsed.group("literal")))


#: Properties JavaScript objects inherit (functions there, not data): refused rather than guessed.
_INHERITED = frozenset({"constructor", "__proto__", "toString", "valueOf", "hasOwnProperty", "isPrototypeOf",
                        "propertyIsEnumerable", "toLocaleString", "__defineGetter__", "__defineSetter__",
                        "__lookupGetter__", "__lookupSetter__"})  # fmt: skip
_KEYWORDS: dict[str, Any] = {"true": True, "false": False, "null": None}


def _literal(text: str) -> Any:
    if text[0] in "'\"":
        return text[1:-1]
    return _KEYWORDS[text] if text in _KEYWORDS else float(text)


def _read(entity: Mapping[str, Any], path: tuple[str, ...], text: str) -> Any:
    value: Any = entity
    for i, part in enumerate(path):
        if value is UNDEFINED or value is None:
            shown = "entity" + "".join(f".{p}" for p in path[:i])
            raise EntityMatchError(f"{text!r}: cannot read {part!r} of {_js_type(value)} ({shown})")
        if isinstance(value, Mapping):
            value = value.get(part, UNDEFINED)
        elif isinstance(value, list) and part == "length":
            value = len(value)
        elif isinstance(value, list) and part.isdigit() and str(int(part)) == part:
            value = value[int(part)] if int(part) < len(value) else UNDEFINED
        elif isinstance(value, str) and part == "length":
            value = len(value.encode("utf-16-le")) // 2
        else:  # a string's or a list's methods, a number's: not data this evaluator reads exactly
            raise EntityMatchError(f"{text!r}: pipeline does not evaluate property {part!r} of a {_type(value)}")
    return value


def _type(value: Any) -> str:
    return {bool: "boolean", str: "string", list: "list"}.get(type(value), "number")


def _js_type(value: Any) -> str:
    return "undefined" if value is UNDEFINED else "null"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _as_float(value: int | float) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _strict_equal(a: Any, b: Any) -> bool:
    """JavaScript ``===`` between a JSON value and a literal."""
    if _is_number(a) and _is_number(b):
        return _as_float(a) == _as_float(b)
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    return False  # objects are never === a literal; undefined is not === any literal


def _loose_equal(a: Any, b: Any) -> bool:
    """JavaScript ``==`` (the Abstract Equality Comparison) between a JSON value and a literal."""
    if a is UNDEFINED or a is None or b is None:
        return (a is UNDEFINED or a is None) and b is None
    if isinstance(b, bool):
        return _loose_equal(a, 1.0 if b else 0.0)
    if isinstance(a, bool):
        return _loose_equal(1.0 if a else 0.0, b)
    if isinstance(a, (list, dict)):
        return _loose_equal(_to_string(a), b)
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    if isinstance(a, str):
        return _to_number(a) == _as_float(b)
    if isinstance(b, str):
        return _as_float(a) == _to_number(b)
    return _as_float(a) == _as_float(b)


#: JavaScript's WhiteSpace and LineTerminator characters, which ToNumber trims.
_JS_SPACE = "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"  # noqa: E501
_JS_DECIMAL = re.compile(r"[+-]?(?:Infinity|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\Z")
_JS_RADIX = re.compile(r"0(?:[xX](?P<x>[0-9a-fA-F]+)|[oO](?P<o>[0-7]+)|[bB](?P<b>[01]+))\Z")


def _to_number(text: str) -> float:
    """JavaScript's ToNumber of a string (NaN for what is not a number)."""
    stripped = text.strip(_JS_SPACE)
    if not stripped:
        return 0.0
    if _JS_DECIMAL.match(stripped):
        return float(stripped.replace("Infinity", "inf"))
    radix = _JS_RADIX.match(stripped)
    if radix:
        digits, base = next((d, b) for d, b in zip(radix.groups(), (16, 8, 2), strict=True) if d)
        return _as_float(int(digits, base))
    return math.nan


def _to_string(value: Any) -> str:
    """JavaScript's ToString of a JSON value (arrays join their items with ',')."""
    if isinstance(value, dict):
        return "[object Object]"
    if isinstance(value, list):
        return ",".join("" if item is None else _to_string(item) for item in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if _is_number(value):
        return _number_to_string(_as_float(value))
    return str(value)


def _number_to_string(number: float) -> str:
    """JavaScript's Number::toString: the shortest round-trip digits, in its notation."""
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    if number == 0:
        return "0"
    sign = "-" if number < 0 else ""
    digits, point = _shortest_digits(abs(number))
    k, n = len(digits), point
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * (-n) + digits
    e = n - 1
    shown = digits[0] + ("." + digits[1:] if k > 1 else "")
    return f"{sign}{shown}e{'+' if e >= 0 else '-'}{abs(e)}"


def _shortest_digits(number: float) -> tuple[str, int]:
    """The shortest decimal digits that read back as ``number`` (Python's repr, which is the same
    shortest round trip JavaScript uses) and the position of the decimal point."""
    text = repr(number)
    mantissa, _, exponent = text.partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = (whole + fraction).lstrip("0")
    leading_zeros = len(whole + fraction) - len((whole + fraction).lstrip("0"))
    point = len(whole) - leading_zeros + (int(exponent) if exponent else 0)
    digits = digits.rstrip("0") or "0"
    return digits, point

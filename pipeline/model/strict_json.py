"""Strict JSON for everything that arrives from outside (HTTP bodies, the agent's socket).

Python's ``json.loads`` is lenient where a daemon cannot be: it recurses once per nesting level
(``{"a":`` ten thousand times raises RecursionError), accepts ``NaN``, ``Infinity`` and
``1e999`` (infinity), reads integers of any length until the interpreter's 4,300-digit limit
raises ValueError, decodes bytes as UTF-8, -16 or -32 with surrogates let through, and leaves
``"\\ud800"`` (an escaped lone surrogate, which no UTF-8 encoder accepts later) in a string.

:func:`loads` refuses all of these with :class:`~pipeline.errors.MalformedJsonError`, naming
the line and column where it can:

- the bytes must be UTF-8 (strictly: no surrogates, no byte order mark);
- objects and arrays nest at most :data:`MAX_DEPTH` deep, checked before parsing, so the
  parser never recurses deeper than that;
- numbers are finite and within float64's range (about 1.8e308), as Go's decoder reads them;
- a ``\\uD800``-``\\uDFFF`` escape must be half of a surrogate pair.

The checks cost little on ordinary input: the depth is only scanned when the body holds more
brackets than the limit, the surrogate escapes only when one appears at all.

Ordinary input is parsed by orjson (about a quarter of the cost of Python's ``json`` with the
checks above). orjson refuses everything refused here (non-finite numbers, lone surrogates,
escaped or encoded, a byte order mark, invalid UTF-8) but with its own words, and it differs in
two places: integers beyond 64 bits come out as floats, and it nests up to 1,024 levels. So it
is only given text with no run of 19 digits (a shorter integer literal fits in 64 bits) and
within :data:`MAX_DEPTH` brackets; whatever it refuses is parsed again by the reference path
below, which names the refusal and its line and column as it always did.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

from pipeline.errors import MalformedJsonError

#: Objects and arrays nest at most this deep (a Sensu event needs 5: event.check.metadata.labels).
MAX_DEPTH = 64
#: An integer literal of more digits than this cannot be a float64 (and is refused before Python
#: converts it: a digit string is converted in quadratic time).
_MAX_INT_DIGITS = 309
_STRING_OR_BRACKET = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.S)
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_ESCAPE = re.compile(r"\\(?:u([0-9a-fA-F]{4})|.)", re.S)
#: A run of 19 digits may be an integer past 64 bits, which orjson would read as a float. Looked
#: for as a run of zeros once every digit is a zero (a tenth of the cost of a regular expression).
_DIGITS_AS_ZEROS = bytes.maketrans(b"123456789", b"000000000")
_LONG_RUN = b"0" * 19
_LONG_DIGITS_TEXT = re.compile(r"[0-9]{19}")


class _BadNumber(Exception):
    def __init__(self, literal: str) -> None:
        super().__init__(literal)
        self.literal = literal


def _parse_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise _BadNumber(literal)
    return value


def _parse_int(literal: str) -> int:
    if len(literal) > _MAX_INT_DIGITS + 1:  # one more for a sign
        raise _BadNumber(literal)
    value = int(literal)
    if len(literal) >= _MAX_INT_DIGITS:
        try:
            float(value)
        except OverflowError:
            raise _BadNumber(literal) from None
    return value


def _parse_constant(literal: str) -> Any:
    raise _BadNumber(literal)


_DECODER = json.JSONDecoder(parse_float=_parse_float, parse_int=_parse_int, parse_constant=_parse_constant)
#: For JSON we wrote ourselves: a metric point's value may be NaN or infinite (``json.dumps`` writes
#: them, as Python's and JavaScript's parsers read them), and a pipe handler must read it back.
_NON_FINITE_DECODER = json.JSONDecoder(parse_int=_parse_int)


def loads(data: bytes | str, *, allow_nan: bool = False) -> Any:
    """The JSON value of ``data``; MalformedJsonError when it is not acceptable JSON. ``allow_nan``
    lets ``NaN``, ``Infinity`` and overflowing floats through, for JSON the pipeline wrote."""
    if type(data) is bytes:
        fast = data.count(b"[") + data.count(b"{") <= MAX_DEPTH and _LONG_RUN not in data.translate(_DIGITS_AS_ZEROS)
    elif type(data) is str:
        fast = data.count("[") + data.count("{") <= MAX_DEPTH and not _LONG_DIGITS_TEXT.search(data)
    else:
        fast = False
    if fast:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass  # refused or not: the reference path decides, and names the refusal
    return _reference_loads(data, allow_nan)


def _reference_loads(data: bytes | str, allow_nan: bool) -> Any:
    """:func:`loads` by Python's ``json`` and the checks above."""
    text = _text(data)
    _check_depth(text)
    try:
        value = (_NON_FINITE_DECODER if allow_nan else _DECODER).decode(text)
    except json.JSONDecodeError as exc:
        raise _error("syntax", exc.msg, exc.lineno, exc.colno) from None
    except _BadNumber as exc:
        shown = exc.literal if len(exc.literal) <= 20 else f"{exc.literal[:12]}... ({len(exc.literal)} characters)"
        line, column = _position(text, text.find(exc.literal))
        raise _error("number", f"number {shown} is not finite or out of range", line, column) from None
    if _SURROGATE_ESCAPE.search(text):
        _check_surrogates(text)
    return value


def _text(data: bytes | str) -> str:
    if isinstance(data, str):
        try:
            data.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise _error("surrogate", "a lone surrogate is not text", *_position(data, exc.start)) from None
        text = data
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            column = exc.start - data.rfind(b"\n", 0, exc.start)
            raise _error("encoding", f"not UTF-8: byte 0x{data[exc.start]:02x}: {exc.reason}", line, column) from None
    if text.startswith("\ufeff"):
        raise _error("encoding", "a byte order mark is not allowed in JSON", 1, 1)
    return text


def _check_depth(text: str) -> None:
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return  # cannot be deeper: the common case, without a scan
    depth = 0
    for match in _STRING_OR_BRACKET.finditer(text):
        bracket = match[0]
        if bracket in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                line, column = _position(text, match.start())
                raise _error("depth", f"nested deeper than {MAX_DEPTH} levels", line, column)
        elif bracket in "]}":
            depth -= 1


def _check_surrogates(text: str) -> None:
    """Every escaped surrogate must be a high one directly followed by a low one. Only escapes
    are matched, in order and each whole (``\\\\`` included), so an escaped backslash followed by
    ``ud800`` is not taken for one."""
    pending: re.Match[str] | None = None
    for match in _ESCAPE.finditer(text):
        code = int(match[1], 16) if match[1] else -1
        if pending is not None:
            if 0xDC00 <= code <= 0xDFFF and match.start() == pending.end():
                pending = None
                continue
            break
        if 0xD800 <= code <= 0xDBFF:
            pending = match
        elif 0xDC00 <= code <= 0xDFFF:
            pending = match
            break
    if pending is not None:
        line, column = _position(text, pending.start())
        raise _error("surrogate", f"lone surrogate {pending[0]} is not text", line, column)


def _position(text: str, index: int) -> tuple[int, int]:
    if index < 0:
        return 0, 0
    return text.count("\n", 0, index) + 1, index - text.rfind("\n", 0, index)


def _error(reason: str, message: str, line: int, column: int) -> MalformedJsonError:
    where = f" at line {line} column {column}" if line else ""
    return MalformedJsonError("", f"malformed JSON{where}: {message}", reason=reason, line=line, column=column)

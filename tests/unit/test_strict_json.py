"""The strict JSON loader every port uses: whatever the bytes, a value or a MalformedJsonError
naming the problem and where it is, never another exception."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.errors import MalformedJsonError
from pipeline.model.strict_json import MAX_DEPTH, loads


@pytest.mark.parametrize(
    ("data", "reason", "message"),
    [
        (b'{"a":' * 10_000, "depth", f"malformed JSON at line 1 column {5 * MAX_DEPTH + 1}: nested deeper than 64"),
        (b"[" * 100_000, "depth", "malformed JSON at line 1 column 65: nested deeper than 64 levels"),
        (b'{"a": NaN}', "number", "malformed JSON at line 1 column 7: number NaN is not finite"),
        (b"[1,\n Infinity]", "number", "malformed JSON at line 2 column 2: number Infinity"),
        (b"[-Infinity]", "number", "malformed JSON at line 1 column 2: number -Infinity"),
        (b'{"v": 1e999}', "number", "malformed JSON at line 1 column 7: number 1e999 is not finite or out of range"),
        (b"1" + b"0" * 5000, "number", "malformed JSON at line 1 column 1: number 100000000000... (5001 characters)"),
        (b'"\\ud800"', "surrogate", "malformed JSON at line 1 column 2: lone surrogate \\ud800 is not text"),
        (b'["ok", "\\udc00\\ud800"]', "surrogate", "malformed JSON at line 1 column 9: lone surrogate \\udc00"),
        (b'{"a": "x\xffy"}', "encoding", "malformed JSON at line 1 column 9: not UTF-8: byte 0xff: invalid start byte"),
        (b'"\xed\xa0\x80"', "encoding", "malformed JSON at line 1 column 2: not UTF-8: byte 0xed"),
        (b"\xef\xbb\xbf{}", "encoding", "malformed JSON at line 1 column 1: a byte order mark is not allowed"),
        (b"\xff\xfe{\x00}\x00", "encoding", "malformed JSON at line 1 column 1: not UTF-8"),
        (b'{"a": 1,}', "syntax", "malformed JSON at line 1 column 9: Expecting property name"),
        (b"", "syntax", "malformed JSON at line 1 column 1: Expecting value"),
    ],
)
def test_what_is_refused_is_named_and_located(data: bytes, reason: str, message: str) -> None:
    with pytest.raises(MalformedJsonError) as info:
        loads(data)
    assert (info.value.reason, str(info.value)[: len(message)]) == (reason, message)


@pytest.mark.parametrize(
    ("data", "value"),
    [
        ("[" * MAX_DEPTH + "]" * MAX_DEPTH, json.loads("[" * MAX_DEPTH + "]" * MAX_DEPTH)),
        ('["' + "[" * 1000 + '"]', ["[" * 1000]),  # brackets inside strings are text
        ('"\\\\ud800"', "\\ud800"),  # an escaped backslash, then text
        ('"\\ud83d\\ude00"', "\U0001f600"),  # a surrogate pair
        ("[1e308, -1.5, 12345678901234567890]", [1e308, -1.5, 12345678901234567890]),
        ("9" * 308, int("9" * 308)),
    ],
)
def test_what_is_accepted_reads_as_json_reads_it(data: str, value: Any) -> None:
    assert loads(data.encode()) == value
    assert loads(data) == value


@settings(max_examples=300)
@given(data=st.binary(max_size=200) | st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_any_bytes_give_a_value_or_a_malformed_json_error(data: bytes) -> None:
    try:
        value = loads(data)
    except MalformedJsonError:
        return
    json.dumps(value, allow_nan=False).encode("utf-8")  # what was accepted can be written out again


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20,
)


@given(value=JSON_VALUES)
def test_every_json_value_python_writes_reads_back(value: Any) -> None:
    for ensure_ascii in (True, False):
        assert loads(json.dumps(value, ensure_ascii=ensure_ascii).encode()) == value


def test_json_the_pipeline_wrote_may_hold_non_finite_points() -> None:
    value = loads(b'{"points": [NaN, Infinity, -Infinity, 1e999]}', allow_nan=True)
    assert [str(v) for v in value["points"]] == ["nan", "inf", "-inf", "inf"]
    with pytest.raises(MalformedJsonError, match="nested deeper"):
        loads(b"[" * 100, allow_nan=True)  # the other rules still hold


def _reference(data: bytes | str) -> tuple[str, Any]:
    """What Python's json with the checks gives (the parser before orjson), as a comparable pair."""
    from pipeline.model.strict_json import _reference_loads

    try:
        return "value", _reference_loads(data, False)
    except MalformedJsonError as exc:
        return "refused", str(exc)


def _ours(data: bytes | str) -> tuple[str, Any]:
    try:
        return "value", loads(data)
    except MalformedJsonError as exc:
        return "refused", str(exc)


JSONISH = st.lists(
    st.sampled_from(['"', "\\", "u", "d8", "dc", "00", "{", "}", "[", "]", ":", ",", "1", "-", "0", ".", "e", "E",
                     "+", "9" * 18, "9" * 19, "a", " ", "\n", "null", "true", "NaN", "Infinity", "1e308", "1e309",
                     "\ud800", "\xe9", "\U0001f600", "\ufeff", "\x00", "\x7f"]),
    max_size=30,
).map("".join)  # fmt: skip


@settings(max_examples=500)
@given(text=JSONISH | st.text(max_size=40))
def test_the_fast_parser_gives_what_the_reference_gives(text: str) -> None:
    """orjson takes ordinary input; every value and every refusal (message, line, column) is the
    reference parser's, for text and for its bytes."""
    assert _ours(text) == _reference(text)
    raw = text.encode("utf-8", "surrogatepass")
    assert _ours(raw) == _reference(raw)


@given(value=JSON_VALUES)
def test_written_json_reads_back_exactly_on_the_fast_path(value: Any) -> None:
    raw = json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")
    assert _ours(raw) == _reference(raw)


@pytest.mark.parametrize(
    "data",
    [b"18446744073709551616", b"-9223372036854775809", b"[12345678901234567890123]", b'{"a": 1, "a": 2, "b": 3}',
     b'"\\ud83d\\u0041"', b'"\xed\xa0\x80"', b"1.8e308", b"[" * 65 + b"]" * 65, b"9" * 400, b'"\xef\xbf\xbe"',
     bytearray(b"[1]")],
)  # fmt: skip
def test_where_orjson_differs_the_reference_decides(data: bytes) -> None:
    assert _ours(data) == _reference(data)

"""Every number has a range: integer fields hold what Sensu Go's Go types hold, floats are finite,
and whatever a peer sends, decoding raises nothing but ValidationError naming the field."""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.silencing import with_times
from pipeline.errors import ValidationError
from pipeline.model import Check, CheckConfig, Entity, Event, MetricPoint, Metrics, ObjectMeta
from pipeline.model.codec import INT32, INT64, UINT32, Bounds, check_ranges, decode, encode, field
from pipeline.model.deadletter import DeadLetter
from pipeline.model.pipeline import Silenced
from pipeline.model.resources import RESOURCE_TYPES

NOW_SECONDS = 1_700_000_000
ROOTS: list[type[Any]] = [Event, DeadLetter, *RESOURCE_TYPES.values()]


def _record_types(cls: type[Any], seen: dict[type[Any], None]) -> None:
    """``cls`` and every model record reachable from its fields."""
    if cls in seen:
        return
    seen[cls] = None
    for hint in typing.get_type_hints(cls).values():
        for tp in (hint, *typing.get_args(hint)):
            if isinstance(tp, type) and dataclasses.is_dataclass(tp):
                _record_types(tp, seen)


def _int_fields() -> list[tuple[type[Any], str, Bounds]]:
    seen: dict[type[Any], None] = {}
    for root in ROOTS:
        _record_types(root, seen)
    found = []
    for cls in seen:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if hints[f.name] is int:
                found.append((cls, f.metadata.get("key") or f.name, f.metadata["bounds"]))
    return found


INT_FIELDS = _int_fields()


def test_the_walk_finds_the_fields_the_issue_names() -> None:
    names = {(cls.__name__, name) for cls, name, _ in INT_FIELDS}
    assert {("CheckConfig", "interval"), ("CheckConfig", "timeout"), ("CheckConfig", "ttl"),
            ("CheckConfig", "high_flap_threshold"), ("Check", "status"), ("Handler", "timeout"),
            ("Silenced", "expire"), ("HookConfig", "timeout")} <= names  # fmt: skip


@pytest.mark.parametrize(("cls", "key", "bounds"), INT_FIELDS, ids=[f"{c.__name__}.{k}" for c, k, _ in INT_FIELDS])
def test_every_integer_field_refuses_values_outside_its_range_naming_the_field(
    cls: type[Any], key: str, bounds: Bounds
) -> None:
    low, high = bounds
    for value in (high + 1, low - 1, 10**30):
        with pytest.raises(ValidationError) as caught:
            decode(cls, {key: value}, "spec")
        assert str(caught.value) == f"spec.{key}: {value} is out of range ({low}..{high})"
    for value in (low, high):
        assert getattr(decode(cls, {key: value}), _attr(cls, key)) == value


def _attr(cls: type[Any], key: str) -> str:
    return next(f.name for f in dataclasses.fields(cls) if (f.metadata.get("key") or f.name) == key)


def test_ranges_are_the_go_types_of_sensu_go() -> None:
    bounds = {(cls.__name__, key): b for cls, key, b in INT_FIELDS}
    assert bounds["CheckConfig", "interval"] == UINT32 == (0, 4294967295)
    assert bounds["CheckConfig", "timeout"] == UINT32
    assert bounds["CheckConfig", "ttl"] == INT64
    assert bounds["Check", "status"] == UINT32
    assert bounds["Check", "executed"] == INT64
    assert bounds["Hook", "status"] == INT32
    assert bounds["System", "arm_version"] == INT32


def test_the_message_of_the_issue() -> None:
    with pytest.raises(ValidationError, match=r"^spec\.interval: 1000000000000000000000000000000 is out of range "
                                              r"\(0\.\.4294967295\)$"):  # fmt: skip
        decode(CheckConfig, {"interval": 10**30}, "spec")


def test_an_integer_too_long_to_print_is_still_named() -> None:
    with pytest.raises(ValidationError, match=r"^check\.status: an integer of 16610 bits is out of range"):
        decode(Check, {"status": 10**5000}, "check")


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 10**400])
def test_floats_must_be_finite(value: float) -> None:
    with pytest.raises(ValidationError, match=r"^check\.duration: "):
        decode(Check, {"duration": value}, "check")
    with pytest.raises(ValidationError, match=r"^points\[0\]\.value: "):
        decode(Metrics, {"points": [{"name": "x", "value": value}]})


def test_an_integer_field_without_a_range_is_a_programming_error() -> None:
    @dataclasses.dataclass(slots=True)
    class Unbounded:
        count: int = field(0)

    with pytest.raises(TypeError, match=r"Unbounded\.count: an integer field needs bounds"):
        decode(Unbounded, {})


def test_an_event_built_in_code_is_checked_by_check_ranges() -> None:
    """A decoded event was checked by its decoder; one built in code (a push adapter's, a legacy
    result) is checked by check_ranges, which the places that build them call."""
    event = Event(entity=Entity(metadata=ObjectMeta(name="e")), check=Check(metadata=ObjectMeta(name="c")))
    event.check.history = []  # type: ignore[union-attr]
    event.check_ranges()
    event.check.status = 2**63  # type: ignore[union-attr]
    with pytest.raises(ValidationError, match=r"^check\.status: 9223372036854775808 is out of range"):
        event.check_ranges()
    event.check.status = 0  # type: ignore[union-attr]
    event.metrics = Metrics(points=[MetricPoint(name="x", value=math.nan)])
    with pytest.raises(ValidationError, match=r"^metrics\.points\[0\]\.value: expected a finite number, got nan$"):
        event.check_ranges()


def test_check_ranges_accepts_what_decode_accepts() -> None:
    check = decode(Check, {"status": 2, "interval": 4294967295, "ttl": -(2**63), "history": [{"status": 1}]})
    check_ranges(check)


JSON_LIKE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=20,
)
CHECK_KEYS = st.sampled_from([f.name for f in dataclasses.fields(Check)] + ["metadata", "history", "hooks", "x"])


@settings(max_examples=300)
@given(st.dictionaries(CHECK_KEYS, JSON_LIKE | st.dictionaries(st.sampled_from(["name", "status", "value",
                                                                                "timeout", "executed"]), JSON_LIKE)))  # fmt: skip
def test_decoding_anything_raises_only_validation_error(data: dict[str, Any]) -> None:
    for cls in (Check, CheckConfig, Event):
        try:
            obj = decode(cls, data)
        except ValidationError:
            continue
        check_ranges(obj)
        msgpack.packb(encode(obj), use_bin_type=True)  # what the store and the wire do with it
        json.dumps(encode(obj), allow_nan=False)  # what handlers get


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"x": 2**70}, r"^check\.subdue\.x: 1180591620717411303424 is out of range"),
        ({"x": [math.nan]}, r"^check\.subdue\.x\[0\]: expected a finite number, got nan$"),
        ({1: "a"}, r"^check\.subdue: expected string key, got integer 1$"),
        ({"when": b"raw"}, r"^check\.subdue\.when: expected a JSON value, got bytes b'raw'$"),
        (json.loads("[" * 65 + "]" * 65), r"^check\.subdue(\[0\])*: nested deeper than 64 levels$"),
    ],
)
def test_json_carried_as_it_is_holds_only_what_the_store_and_wire_take(value: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        decode(Check, {"subdue": value}, "check")


def test_json_nested_to_the_limit_is_kept() -> None:
    value = json.loads("[" * 64 + "]" * 64)
    assert decode(Check, {"subdue": value}).subdue == value


def test_a_silence_expiring_past_int64_expires_at_its_top() -> None:
    entry = with_times(decode(Silenced, {"check": "c", "expire": INT64[1]}), NOW_SECONDS)
    assert entry.expire_at == INT64[1]
    check_ranges(entry)

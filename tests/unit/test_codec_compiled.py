"""The generated decoders and encoders (pipeline/model/codec_compiled.py) against the generic
codec they stand in for: the same object or the same error, for every field of an event set to
every kind of odd value, and the same map for every model object encoded."""

from __future__ import annotations

import copy
import dataclasses
import importlib
import json
import math
import pkgutil
from collections.abc import Iterator
from typing import Any

import msgpack
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pipeline.model
from pipeline.model import (
    Check,
    CheckHistory,
    Entity,
    Event,
    MetricPoint,
    Metrics,
    MetricTag,
    Network,
    NetworkInterface,
    ObjectMeta,
    System,
)
from pipeline.model.codec import (
    _decode_checked,
    _table,
    decode,
    encode,
    encode_generic,
    field,
    replace,
)
from pipeline.model.codec_pack import encode_to_pack
from pipeline.model.event import event_json
from pipeline.model.meta import ResourceReference


class Text(str):
    """A str that is not exactly ``str``: the generated decoder leaves it to the generic one."""


ODD_VALUES: list[Any] = [None, True, False, 0, 1, -1, 2**31, 2**63, -(2**63) - 1, 2**70, 1.5, math.nan, math.inf,
                         "", "x", Text("t"), [], [None], ["a", 1], [{}], {}, {"a": "b"}, {"a": 1}, {1: "a"}]  # fmt: skip


def rich_event() -> Event:
    entity = Entity(
        entity_class="agent",
        metadata=ObjectMeta(name="web1", namespace="default", labels={"env": "prod"}, annotations={"a": "b"}),
        subscriptions=["linux", "entity:web1"],
        system=System(
            hostname="web1", os="linux", network=Network([NetworkInterface("eth0", "00:11", ["10.0.0.1/8"])])
        ),
        last_seen=1_800_000_000,
        redact=["password"],
    )
    check = Check(
        metadata=ObjectMeta(name="disk", namespace="default"),
        command="check_disk -w 80",
        interval=60,
        status=2,
        output="DISK CRITICAL | used=97%;80;90",
        handlers=["mail"],
        subscriptions=["linux"],
        duration=0.25,
        executed=1_800_000_000,
        history=[CheckHistory(i % 3, 1_800_000_000 - 60 * i) for i in range(21)],
        occurrences=3,
        total_state_change=40,
        subdue={"days": {"all": [{"begin": "9:00 AM", "end": "5:00 PM"}]}},
    )
    metrics = Metrics(handlers=["graphite"], points=[MetricPoint("disk.used", 97.5, 1_800_000_000,
                                                                 [MetricTag("host", "web1")])])  # fmt: skip
    return Event(timestamp=1_800_000_000, entity=entity, check=check, metrics=metrics, id="3f2e1d4c-0000-4000-8000-000000000001",
                 pipelines=[ResourceReference(name="p", type="Pipeline", api_version="core/v2")])  # fmt: skip


def leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path into ``value``'s maps and lists (each map key and list item, nested ones too)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*path, key)
            yield from leaves(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield (*path, i)
            yield from leaves(item, (*path, i))


def outcome(fn: Any, *args: Any) -> tuple[str, Any]:
    try:
        result = fn(*args)
    except Exception as exc:  # the error itself is what is compared
        return ("error", (type(exc), str(exc)))
    return ("ok", result)


def test_a_rich_event_encodes_and_decodes_as_the_generic_codec() -> None:
    event = rich_event()
    data = encode(event)
    assert data == encode_generic(event)
    assert decode(Event, data) == _decode_checked(Event, data) == event


@pytest.mark.parametrize("odd", ODD_VALUES, ids=repr)
def test_every_field_set_to_an_odd_value_decodes_or_fails_as_the_generic_codec(odd: Any) -> None:
    base = encode(rich_event())
    for path in leaves(base):
        data = copy.deepcopy(base)
        target = data
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = copy.deepcopy(odd)
        fast, generic = outcome(decode, Event, data), outcome(_decode_checked, Event, data)
        if fast[0] == "ok" and generic[0] == "ok":
            # NaN is never equal to itself: compare the encodings' text
            assert repr(encode(fast[1])) == repr(encode(generic[1])), path
        else:
            assert fast == generic, path


def test_unknown_keys_and_missing_maps_are_the_generic_codecs_errors() -> None:
    data = encode(rich_event())
    data["check"]["history"][3]["bogus"] = 1
    assert outcome(decode, Event, data) == outcome(_decode_checked, Event, data)
    assert outcome(decode, Event, "not a map") == outcome(_decode_checked, Event, "not a map")


def test_an_int_in_a_float_field_is_a_float_as_the_generic_codec_makes_it() -> None:
    data = encode(rich_event())
    data["check"]["duration"] = 3
    event = decode(Event, data)
    assert event.check is not None
    assert type(event.check.duration) is float
    assert event == _decode_checked(Event, data)


def test_decoded_lists_and_maps_are_copies() -> None:
    data = encode(rich_event())
    event = decode(Event, data)
    assert event.check is not None
    data["check"]["handlers"].append("other")
    data["entity"]["metadata"]["labels"]["new"] = "x"
    assert event.check.handlers == ["mail"]
    assert event.entity is not None
    assert event.entity.metadata.labels == {"env": "prod"}


def default_instances() -> Iterator[Any]:
    """A default instance of every model class the codec can take (of every module of pipeline.model)."""
    for info in pkgutil.iter_modules(pipeline.model.__path__):
        module = importlib.import_module(f"pipeline.model.{info.name}")
        for cls in vars(module).values():
            if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)) or cls.__module__ != module.__name__:
                continue
            try:
                _table(cls)
                yield cls()
            except TypeError:  # not a codec class, or a required field: nothing to build by default
                continue


def test_every_model_class_encodes_as_the_generic_codec() -> None:
    rich = rich_event()
    instances = list(default_instances())
    assert len(instances) > 20
    for obj in [rich, rich.entity, rich.check, rich.metrics, *instances]:
        assert encode(obj) == encode_generic(obj), type(obj)
        assert outcome(decode, type(obj), encode(obj)) == outcome(_decode_checked, type(obj), encode(obj)), type(obj)


def test_replace_is_dataclasses_replace() -> None:
    event = rich_event()
    assert event.check is not None
    changed = replace(event.check, status=0, history=[], occurrences=9)
    assert changed == dataclasses.replace(event.check, status=0, history=[], occurrences=9)
    assert changed.handlers is event.check.handlers  # shallow, as dataclasses.replace
    assert event.check.status == 2  # the original is unchanged
    assert replace(event) == event
    assert replace(event) is not event


@dataclasses.dataclass(slots=True)
class Required:
    name: str = field()
    count: int = field(0, bounds=(0, 10))


@dataclasses.dataclass(slots=True, frozen=True)
class Frozen:
    name: str = field("")


def test_a_required_field_and_a_frozen_class_decode_as_the_generic_codec() -> None:
    for data in [{"count": 1}, {"name": "x"}, {"name": "x", "count": 11}, {}]:
        assert outcome(decode, Required, data) == outcome(_decode_checked, Required, data), data
    assert decode(Frozen, {"name": "x"}) == Frozen("x")
    assert replace(Frozen("x"), name="y") == Frozen("y")


PACKABLE = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**64), max_value=2**65) | st.floats() | st.text()
    | st.binary(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3) | st.integers(0, 3), inner, max_size=3),
    max_leaves=12,
)  # fmt: skip


@settings(max_examples=300)
@given(value=PACKABLE, output=st.text(max_size=8))
def test_to_msgpack_packs_what_msgpack_packs_or_fails_as_it_does(value: Any, output: str) -> None:
    """ormsgpack packs the event's map where it can; the bytes are msgpack's, and what ormsgpack
    refuses is msgpack's to pack or refuse (same exception type)."""
    event = rich_event()
    assert event.check is not None
    event.check.subdue, event.check.output = value, output
    expected = outcome(lambda: msgpack.packb(entity_last(encode_to_pack(event)), use_bin_type=True))
    got = outcome(event.to_msgpack)
    assert (got[0], got[1] if got[0] == "ok" else got[1][0]) == (expected[0], expected[1] if expected[0] == "ok"
                                                                 else expected[1][0])  # fmt: skip


def test_to_msgpack_takes_nesting_ormsgpack_does_not() -> None:
    event = rich_event()
    assert event.check is not None
    deep: list[Any] = []
    event.check.subdue = deep
    for _ in range(300):
        deep.append([])
        deep = deep[0]
    assert event.to_msgpack() == msgpack.packb(entity_last(encode_to_pack(event)), use_bin_type=True)


def entity_last(data: dict[str, Any]) -> dict[str, Any]:
    """An event's map in the order :meth:`Event.to_msgpack` packs it: the entity last."""
    return {key: value for key, value in data.items() if key != "entity"} | {"entity": data["entity"]}


def test_the_map_to_pack_is_the_encoded_map_less_its_defaults_sharing_plain_lists() -> None:
    rich = rich_event()
    for obj in [rich, rich.entity, rich.check, rich.metrics, *default_instances()]:
        packed, whole = encode_to_pack(obj), encode(obj)
        assert decode(type(obj), packed) == decode(type(obj), whole) == obj, type(obj)
        for key in whole.keys() - packed.keys():  # only what decodes to the field's default is left out
            assert decode(type(obj), {key: whole[key]}) == decode(type(obj), {}), (type(obj), key)
    assert rich.check is not None
    assert "publish" not in encode_to_pack(rich)["check"]  # False, its default
    assert encode_to_pack(rich)["check"]["interval"] == 60
    shared = encode_to_pack(rich)
    assert shared["check"]["handlers"] is rich.check.handlers  # not copied: packed at once
    assert encode(rich)["check"]["handlers"] is not rich.check.handlers
    assert shared["check"]["history"][0] == {"status": 0, "executed": 1_800_000_000}  # records still maps


def test_decoders_compiled_by_several_threads_at_once_decode_alike() -> None:
    import threading

    from pipeline.model import codec

    data = encode(rich_event())
    expected = decode(Event, data)
    for _ in range(10):
        codec._DECODERS.clear()
        failures: list[BaseException] = []
        start = threading.Barrier(4)

        def decode_some(start: threading.Barrier, failures: list[BaseException]) -> None:
            start.wait()
            try:
                for _ in range(20):
                    assert decode(Event, data) == expected
            except BaseException as exc:  # reported below: a thread's failure is the test's
                failures.append(exc)

        threads = [threading.Thread(target=decode_some, args=(start, failures)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failures == []


@settings(max_examples=300)
@given(subdue=st.none() | PACKABLE, output=st.text(st.characters(exclude_categories=()), max_size=8),
       duration=st.floats(), value=st.floats(), label=st.text(max_size=4))  # fmt: skip
def test_event_json_writes_the_values_json_dumps_writes_or_fails_as_it_does(
    subdue: Any, output: str, duration: float, value: float, label: str
) -> None:
    """orjson writes the event's JSON where it writes the same values (numbers may be spelled
    another way: ``1e-7`` for Python's ``1e-07``); a NaN or an infinity (which orjson would
    write as null), a free-form value, a key that is not a string, an integer past 64 bits, a
    lone surrogate: json.dumps writes it, or fails, as before."""
    event = rich_event()
    assert event.check is not None
    assert event.metrics is not None
    event.check.subdue, event.check.output, event.check.duration = subdue, output, duration
    event.metrics.points[0].value = value
    event.metrics.points[0].tags[0].value = label
    data = event.to_dict()
    expected = outcome(lambda: json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode())
    got = outcome(lambda: event_json(event, data))
    assert got[0] == expected[0]
    if got[0] != "ok":
        assert got[1][0] is expected[1][0]  # the same exception type
        return
    if got[1] != expected[1]:  # orjson wrote it: the same values, every float finite
        assert math.isfinite(duration)
        assert math.isfinite(value)
        assert subdue is None
        assert json.loads(got[1]) == json.loads(expected[1])
    assert event.to_json() == got[1]


def test_an_event_packed_without_its_defaults_decodes_to_the_same_event_field_by_field() -> None:
    """Every field of every record of an event, at its default and at another value: the
    packed bytes (which leave defaults out) decode to the very same event."""
    rich = rich_event()
    assert rich.check is not None
    assert rich.entity is not None
    for record in (rich, rich.check, rich.entity, rich.entity.metadata, rich.check.metadata):
        defaults = type(record)()
        for f in dataclasses.fields(record):
            for value in (getattr(defaults, f.name), getattr(record, f.name)):
                event = rich_event()
                setattr(part_of(event, record, rich), f.name, copy.deepcopy(value))
                assert Event.from_msgpack(event.to_msgpack()) == event, (type(record).__name__, f.name, value)


def part_of(event: Event, record: Any, rich: Event) -> Any:
    """The record of ``event`` in the place ``record`` holds in ``rich``."""
    assert event.check is not None
    assert event.entity is not None
    assert rich.check is not None
    assert rich.entity is not None
    places = {id(rich): event, id(rich.check): event.check, id(rich.entity): event.entity,
              id(rich.entity.metadata): event.entity.metadata, id(rich.check.metadata): event.check.metadata}  # fmt: skip
    return places[id(record)]


def test_an_event_of_finite_numbers_is_written_by_orjson_one_with_a_nan_point_by_json_dumps() -> None:
    event = rich_event()
    assert event.check is not None
    assert event.metrics is not None
    event.check.subdue, event.check.duration = None, 1e-7
    data = event.to_dict()
    assert event_json(event, data) == orjson.dumps(data)  # the fast writer, not json.dumps
    assert b'"duration":1e-7' in event_json(event, data)  # as Go writes it
    event.metrics.points[0].value = math.nan
    data = event.to_dict()
    assert event_json(event, data) == json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
    assert b'"value":NaN' in event_json(event, data)  # what the pipeline's Python plugins read back

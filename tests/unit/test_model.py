"""The event model: Sensu Go's v2 JSON shape, exact round trips, errors that name the field."""

from __future__ import annotations

import json
import re
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.errors import UnknownFieldError, ValidationError
from pipeline.model import Check, CheckHistory, Entity, Event, MetricPoint, Metrics, MetricTag, ObjectMeta
from pipeline.model.meta import validate_name
from pipeline.model.pipeline import Silenced

# An event as Sensu Go 6 serialises it (fields with explicit json tags are always present).
SENSU_EVENT = {
    "timestamp": 1700000000,
    "entity": {
        "entity_class": "agent",
        "system": {
            "hostname": "web1",
            "os": "linux",
            "platform": "debian",
            "platform_family": "debian",
            "platform_version": "12",
            "network": {"interfaces": [{"name": "lo", "addresses": ["127.0.0.1/8", "::1/128"]}]},
            "arch": "amd64",
            "libc_type": "glibc",
            "vm_system": "",
            "vm_role": "",
            "cloud_provider": "",
            "processes": [],
        },
        "subscriptions": ["linux", "entity:web1"],
        "last_seen": 1700000000,
        "deregister": False,
        "deregistration": {},
        "metadata": {"name": "web1", "namespace": "default", "labels": {"team": "ops"}},
        "sensu_agent_version": "6.12.0",
    },
    "check": {
        "command": "check_disk -w 80 -c 90",
        "handlers": ["slack"],
        "high_flap_threshold": 0,
        "interval": 60,
        "low_flap_threshold": 0,
        "publish": True,
        "runtime_assets": [],
        "subscriptions": ["linux"],
        "proxy_entity_name": "",
        "check_hooks": [],
        "stdin": False,
        "subdue": None,
        "ttl": 0,
        "timeout": 10,
        "round_robin": False,
        "duration": 0.012,
        "executed": 1700000000,
        "history": [{"status": 0, "executed": 1699999940}, {"status": 1, "executed": 1700000000}],
        "issued": 1700000000,
        "output": "DISK WARNING - 85% used | used=85%;80;90\n",
        "state": "failing",
        "status": 1,
        "total_state_change": 0,
        "last_ok": 1699999940,
        "occurrences": 1,
        "occurrences_watermark": 1,
        "output_metric_format": "",
        "output_metric_handlers": [],
        "env_vars": [],
        "metadata": {"name": "disk", "namespace": "default"},
        "secrets": [],
        "is_silenced": False,
        "scheduler": "",
        "processed_by": "web1",
        "pipelines": [],
    },
    "metadata": {"namespace": "default"},
    "id": "3a5c8d1e-0f6b-4b8e-9d3f-2c1a4e5b6c7d",
    "sequence": 5,
    "pipelines": [],
}


def test_sensu_event_round_trips_exactly_through_json_and_msgpack() -> None:
    event = Event.from_json(json.dumps(SENSU_EVENT))
    event.validate()
    assert event.to_dict() == SENSU_EVENT
    assert json.loads(event.to_json()) == SENSU_EVENT
    assert Event.from_msgpack(event.to_msgpack()) == event


def test_fields_land_on_the_model() -> None:
    event = Event.from_dict(SENSU_EVENT)
    assert event.entity is not None
    assert event.check is not None
    assert event.entity_name == "web1"
    assert event.check_name == "disk"
    assert event.check.history == [CheckHistory(0, 1699999940), CheckHistory(1, 1700000000)]
    assert event.entity.metadata.labels == {"team": "ops"}
    assert event.is_incident
    assert event.has_check
    assert not event.has_metrics


def test_metrics_only_and_polymorphic_events() -> None:
    entity = Entity(entity_class="agent", metadata=ObjectMeta(name="web1", namespace="default"))
    metrics = Metrics(
        handlers=["graphite"],
        points=[MetricPoint(name="load1", value=0.5, timestamp=1700000000, tags=[MetricTag("host", "web1")])],
    )
    metrics_only = Event(entity=entity, metrics=metrics)
    metrics_only.validate()
    assert "check" not in metrics_only.to_dict()
    assert metrics_only.to_dict()["metrics"] == {
        "handlers": ["graphite"],
        "points": [
            {"name": "load1", "value": 0.5, "timestamp": 1700000000, "tags": [{"name": "host", "value": "web1"}]}
        ],
    }
    both = Event(entity=entity, check=Check(metadata=ObjectMeta(name="load")), metrics=metrics)
    both.validate()
    assert Event.from_msgpack(both.to_msgpack()) == both


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"check": {"metadata": {"name": "disk"}}}, "entity: event must contain an entity"),
        ({"entity": {"metadata": {"name": "web1"}}}, "event must contain a check or metrics"),
        (
            {"entity": {"metadata": {"name": "web1"}}, "check": {"metadata": {"name": "x"}}, "metadata": {"name": "n"}},
            "metadata.name: events cannot be named",
        ),
        ({"entity": {"metadata": {"name": ""}}, "check": {}}, "entity.metadata.name: name must not be empty"),
        ({"entity": {"metadata": {"name": "web 1"}}, "check": {}}, "entity.metadata.name: name 'web 1' may contain"),
        (
            {"entity": {"metadata": {"name": "w"}}, "check": {"metadata": {"name": "c"}}, "id": "x"},
            "id: expected a UUID",
        ),
    ],
)
def test_validation_errors_name_the_field(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        Event.from_dict(data).validate()
    assert str(info.value).startswith(message)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"check": {"status": "2"}}, "check.status: expected integer, got string '2'"),
        ({"check": {"status": True}}, "check.status: expected integer, got boolean True"),
        ({"check": {"history": [{"status": 0, "executed": "now"}]}}, "check.history[0].executed: expected integer"),
        ({"entity": {"subscriptions": "linux"}}, "entity.subscriptions: expected list, got string 'linux'"),
        ({"entity": {"metadata": {"labels": {"a": 1}}}}, "entity.metadata.labels.a: expected string, got integer 1"),
        ({"check": {"stauts": 1}}, "check.stauts: unknown field"),
        ({"timestamp": 1.5}, "timestamp: expected integer, got number 1.5"),
    ],
)
def test_wrong_types_and_unknown_fields_name_the_path(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        Event.from_dict(data)
    assert str(info.value).startswith(message)


def test_invalid_json_and_msgpack_are_validation_errors() -> None:
    with pytest.raises(ValidationError, match="malformed JSON at line 1 column 2"):
        Event.from_json(b"{not json")
    with pytest.raises(ValidationError, match=r"malformed JSON at line 1 column 36: lone surrogate"):
        Event.from_json(b'{"entity": {"metadata": {"name": "a\\ud800"}}}')
    with pytest.raises(ValidationError, match="invalid msgpack"):
        Event.from_msgpack(b"\xc1")


def test_null_reads_as_the_zero_value_as_in_go() -> None:
    event = Event.from_dict({"entity": {"metadata": {"name": "a"}, "subscriptions": None}, "check": None})
    assert event.entity is not None
    assert event.entity.subscriptions == []
    assert event.check is None


names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.", min_size=1, max_size=20)


@given(
    entity=names,
    check=names,
    statuses=st.lists(st.integers(0, 255), max_size=21),
    output=st.text(max_size=200),
    value=st.floats(allow_nan=False, allow_infinity=False),
)
def test_any_event_round_trips(entity: str, check: str, statuses: list[int], output: str, value: float) -> None:
    event = Event(
        entity=Entity(metadata=ObjectMeta(name=entity, namespace="default")),
        check=Check(
            metadata=ObjectMeta(name=check),
            output=output,
            history=[CheckHistory(s, 1700000000 + i) for i, s in enumerate(statuses)],
        ),
        metrics=Metrics(points=[MetricPoint(name="m", value=value, timestamp=1)]),
    )
    assert Event.from_json(event.to_json()) == event
    assert Event.from_msgpack(event.to_msgpack()) == event


def test_submitted_events_may_carry_fields_the_model_does_not_know() -> None:
    data = {"entity": {"metadata": {"name": "e", "uid": 1}}, "sent_by": "x",
            "check": {"metadata": {"name": "c"}, "status": 2, "history": [{"status": 0, "executed": 1, "note": "n"}]}}  # fmt: skip
    ignored: list[str] = []
    event = Event.from_dict(data, ignored=ignored)
    assert ignored == ["entity.metadata.uid", "sent_by", "check.history[0].note"]
    assert (event.entity_name, event.check_name, event.check and event.check.status) == ("e", "c", 2)
    with pytest.raises(UnknownFieldError, match=r"entity\.metadata\.uid: unknown field"):
        Event.from_dict(data)  # strict unless asked: resource files refuse what they do not know


def test_new_event_ids_are_version_7_uuids_in_canonical_form_made_in_increasing_order() -> None:
    """Version 7 (RFC 9562): the time they were made, then random bits; across several batches
    of ids made ahead, each id greater than the one before, so that a store's index of ids takes
    them at its end."""
    import time
    import uuid

    from pipeline.model import new_event_id
    from pipeline.model.event_ids import BATCH

    before = time.time_ns() // 1_000_000
    ids = [new_event_id() for _ in range(BATCH * 8)]
    after = time.time_ns() // 1_000_000
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    for made in ids:
        parsed = uuid.UUID(made)
        assert (str(parsed), parsed.version, parsed.variant) == (made, 7, uuid.RFC_4122)
    # the first was made ahead, by an earlier test perhaps; the last batch was made within this one
    assert before <= int(ids[-1][:8] + ids[-1][9:13], 16) <= after + 1


def test_a_forked_child_does_not_hand_out_its_parents_ids() -> None:
    import os

    from pipeline.model import new_event_id

    new_event_id()  # the parent holds ids made ahead
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        os.write(write, "".join(new_event_id() for _ in range(300)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as pipe:
        child = pipe.read()
    parents = {new_event_id() for _ in range(300)}
    assert len(child) == 300 * 36
    assert not parents & {child[i : i + 36] for i in range(0, len(child), 36)}


@pytest.mark.parametrize(
    ("given", "valid"),
    [
        ("3f2e1d4c-0000-4000-8000-000000000001", True),
        ("3F2E1D4C-0000-4000-8000-00000000000A", True),
        ("3f2e1d4c000040008000000000000001", True),  # the other forms uuid.UUID takes stay valid
        ("{3f2e1d4c-0000-4000-8000-000000000001}", True),
        ("urn:uuid:3f2e1d4c-0000-4000-8000-000000000001", True),
        ("3f2e1d4c-0000-4000-8000-00000000000g", False),
        ("3f2e1d4c-0000-4000-8000-0000000000011", False),
        ("3f2e1d4c-0000-4000-8000-000000000001\n", False),
    ],
)
def test_an_event_id_is_valid_exactly_when_uuid_takes_it(given: str, valid: bool) -> None:
    event = Event.from_dict({"entity": {"metadata": {"name": "w"}}, "check": {"metadata": {"name": "c"}}, "id": given})
    assert valid == _uuid_takes(given)
    if valid:
        event.validate()
    else:
        with pytest.raises(ValidationError, match="id: expected a UUID"):
            event.validate()


def _uuid_takes(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def test_an_entity_validated_already_is_not_validated_again_but_the_rest_is() -> None:
    event = Event.from_dict({"entity": {"metadata": {"name": "web 1"}}, "check": {"metadata": {"name": "c"}}})
    event.validate(entity_validated=True)  # the caller's word: an agent's own entity, checked as it started
    with pytest.raises(ValidationError, match=r"entity\.metadata\.name"):
        event.validate()
    event.check = Event.from_dict({"entity": {"metadata": {"name": "w"}}, "check": {"metadata": {"name": "c d"}}}).check
    with pytest.raises(ValidationError, match=r"check\.metadata\.name"):
        event.validate(entity_validated=True)


@given(st.lists(st.text(alphabet="ab:. -_\u00e9\n", max_size=6), max_size=40), st.integers(1, 8), st.integers(1, 6))
def test_a_name_is_judged_the_same_each_time_it_is_seen(names: list[str], kept: int, longest: int) -> None:
    """Names found valid are remembered (a memo, bounded): a name is valid, or refused, the same
    on its first sight as on its hundredth, and the memo never holds more names, nor longer ones,
    than it keeps."""
    from pipeline.model import meta

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(meta, "VALID_NAMES_KEPT", kept)
        patch.setattr(meta, "VALID_NAME_KEPT_LENGTH", longest)
        meta._VALID_NAMES.clear()
        for name in names * 3:
            expected = bool(name) and meta.NAME_PATTERN.match(name) is not None
            try:
                meta.validate_name(name, "entity.metadata.name")
                valid = True
            except ValidationError:
                valid = False
            assert valid == expected, name
            assert len(meta._VALID_NAMES) <= kept
            assert all(len(kept_name) <= longest for kept_name in meta._VALID_NAMES)


#: Sensu Go's NameRegex, ``\A[\w\.\-\:]+\z``, as Go's regexp reads it: its ``\w`` is [0-9A-Za-z_].
SENSU_GO_NAME = re.compile(r"[0-9A-Za-z_.:-]+")


@given(st.text(alphabet="aZ09_.:- \u00e9\u00fc\u00df\u0663\u540d\u212a", max_size=8))
def test_a_name_is_valid_exactly_when_sensu_go_takes_it(name: str) -> None:
    """A letter or digit of another script (``héllo``, ``٣``, the Kelvin sign) is refused, as Sensu
    Go refuses it: a name accepted here must be one its tools and API take too."""
    if SENSU_GO_NAME.fullmatch(name):
        validate_name(name, "entity.metadata.name")
    else:
        with pytest.raises(ValidationError) as refused:
            validate_name(name, "entity.metadata.name")
        assert refused.value.path == "entity.metadata.name"


def test_a_silence_subscription_is_ascii_as_in_sensu_go() -> None:
    Silenced(subscription="linux", check="disk").validate()
    with pytest.raises(ValidationError, match=r"subscription.*'lin\u00fcx'"):
        Silenced(subscription="lin\u00fcx", check="disk").validate()

"""Sensu 1.x check results, as local programs write them to the agent's socket."""

from __future__ import annotations

import json

import pytest

from pipeline.core.legacy_result import is_ping, legacy_event, parse_legacy_result
from pipeline.errors import ValidationError
from pipeline.model import Entity, ObjectMeta

AGENT = Entity(entity_class="agent", metadata=ObjectMeta(name="web1", namespace="default"), subscriptions=["linux"])
NOW = 1_800_000_000.0


def parse(result: object) -> object:
    return parse_legacy_result(json.dumps(result).encode(), AGENT, NOW)


def test_a_full_result() -> None:
    event = parse_legacy_result(json.dumps({
        "name": "backup", "output": "backup done\n", "status": 1, "source": "db1", "executed": 1_799_999_990,
        "duration": 12.5, "command": "backup.sh", "interval": 3600, "issued": 1_799_999_980,
        "handlers": ["mail"], "handler": "pager", "ttl": 7200, "subscribers": ["db"], "custom": {"x": 1},
    }).encode(), AGENT, NOW)  # fmt: skip
    check = event.check
    assert check is not None
    assert event.entity == AGENT  # the agent's entity; the source makes the check about a proxy
    assert (check.metadata.name, check.output, check.status, check.proxy_entity_name) == (
        "backup", "backup done\n", 1, "db1")  # fmt: skip
    assert (check.executed, check.issued, check.duration, check.interval, check.ttl) == (
        1_799_999_990, 1_799_999_980, 12.5, 3600, 7200)  # fmt: skip
    assert check.handlers == ["mail", "pager"]
    assert check.subscriptions == ["db"]
    assert check.processed_by == "web1"
    assert event.id
    assert event.timestamp == int(NOW)


def test_a_minimal_result_is_completed_as_the_agent_api_completes_events() -> None:
    event = parse({"name": "cron-job", "output": "ok"})
    assert event.check is not None  # type: ignore[attr-defined]
    check = event.check  # type: ignore[attr-defined]
    assert (check.status, check.interval, check.executed, check.proxy_entity_name) == (0, 1, int(NOW), "")
    assert check.issued == 0  # kept as given: Sensu Go's socket fills only executed (and the timestamp)
    own = parse({"name": "x", "output": "", "client": "web1"})
    assert own.check.proxy_entity_name == ""  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("result", "message"),
    [
        ({"output": "x"}, "name: required"),
        ({"name": "x"}, "output: required"),
        ({"name": "x", "output": "y", "status": "2"}, "status: expected integer, got str '2'"),
        ({"name": "x", "output": "y", "status": -1}, "status: must not be negative"),
        ({"name": "bad name!", "output": "y"}, "check.metadata.name"),
        ({"name": "x", "output": "y", "handlers": "mail"}, "handlers: expected list"),
        ([1, 2], "expected a JSON object, got list"),
    ],
)
def test_invalid_results_name_the_field(result: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        parse(result)


def test_malformed_json_and_pings() -> None:
    with pytest.raises(ValidationError, match="malformed JSON at line 1 column 10"):
        parse_legacy_result(b'{"name": x}', AGENT, NOW)
    assert is_ping(b" ping \n")
    assert not is_ping(b'{"name": "ping"}')


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"status": 2**32}, r"check\.status: 4294967296 is out of range \(0\.\.4294967295\)"),
        ({"interval": -1}, r"check\.interval: -1 is out of range"),
        ({"ttl": 2**63}, r"check\.ttl: 9223372036854775808 is out of range"),
        ({"issued": 2**70, "status": 2**40}, r"check\.issued: "),  # the first in the check's field order
        ({"executed": -(2**64)}, r"check\.executed: "),
    ],
)
def test_numbers_out_of_range_are_refused_naming_the_field(fields: dict[str, int], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        parse({"name": "x", "output": "y", **fields})


def test_a_result_parsed_once_and_the_agents_own_entity() -> None:
    event = legacy_event({"name": "x", "output": "y", "status": 2}, AGENT, NOW)
    assert event.entity is AGENT  # not a copy: the agent packs its entity once for every event
    assert event.check is not None
    assert (event.check.status, event.check.executed) == (2, int(NOW))

"""Pushed change events: Sematext and StackState bodies mapped to Sensu events, errors named."""

from __future__ import annotations

import json
import re

import pytest

from pipeline.core.push import sematext, stackstate
from pipeline.core.push.common import CHANGE, CHANGE_LABEL, PushContext
from pipeline.errors import ValidationError

NOW = 1_800_000_000.0
CONTEXT = PushContext(default_host="backend1", now=NOW, handlers=["chat"])


def test_the_sematext_systemd_line_becomes_a_change_event_of_the_pushing_host() -> None:
    (event,) = sematext.parse(b'{"message" : "Starting Elasticsearch on node web1","type" : "server_start"}', CONTEXT,
                              many=False)  # fmt: skip
    assert event.entity is not None
    assert event.check is not None
    assert (event.entity.name, event.entity.entity_class) == ("backend1", "proxy")
    assert (event.check.metadata.name, event.check.output, event.check.status) == (
        "server_start", "Starting Elasticsearch on node web1", 0)  # fmt: skip
    assert event.check.metadata.labels == {CHANGE_LABEL: CHANGE}
    assert event.check.handlers == ["chat"]
    assert (event.timestamp, event.check.executed) == (int(NOW), int(NOW))
    assert (event.check.low_flap_threshold, event.check.high_flap_threshold) == (0, 0)  # deploys never flap


def test_every_sematext_field_lands() -> None:
    body = {"message": "Deployed 1.4.2", "timestamp": "2027-01-15T08:00:00Z", "name": "deploy of shop",
            "type": "deployment", "tags": ["env:prod", "team=web", "canary"], "priority": "high",
            "severity": "warning", "creator": "ci", "data": {"commit": "abc123"}, "host": "web7", "extra": 1}  # fmt: skip
    (event,) = sematext.parse(json.dumps(body).encode(), CONTEXT, many=False)
    assert event.entity is not None
    assert event.check is not None
    assert event.entity.name == "web7"
    assert event.check.status == 1  # severity first
    assert event.timestamp == 1_800_000_000
    assert event.check.metadata.labels == {"env": "prod", "team": "web", "canary": "true", CHANGE_LABEL: CHANGE}
    assert event.check.metadata.annotations == {
        "sematext/name": "deploy of shop", "sematext/creator": "ci", "sematext/priority": "high",
        "sematext/severity": "warning", "sematext/data": '{"commit": "abc123"}'}  # fmt: skip


def test_several_sematext_events_at_once() -> None:
    events = sematext.parse(b'[{"message": "a", "type": "build"}, {"message": "b", "severity": "error"}]', CONTEXT,
                            many=True)  # fmt: skip
    assert [(e.check_name, e.check.status) for e in events if e.check] == [("build", 0), ("event", 2)]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"type": "deployment"}', "message: required: the text of the event"),
        (b'{"message": "x", "timestamp": "yesterday"}', "timestamp: expected an ISO-8601 time, got 'yesterday'"),
        (b'{"message": "x", "tags": "prod"}', "tags: expected a list of strings"),
        (b'{"message": "x",', "malformed JSON at line 1 column 17"),
        (b"[1]", "expected a JSON object"),
    ],
)
def test_bad_sematext_bodies_name_the_field(body: bytes, message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(")):
        sematext.parse(body, CONTEXT, many=False)
    with pytest.raises(ValidationError, match=r"\[1\]\.message: required"):
        sematext.parse(b'[{"message": "ok"}, {}]', CONTEXT, many=True)


INTAKE = {
    "collection_timestamp": 1_800_000_100,
    "internalHostname": "db1",
    "events": {
        "deploy.db": [{"msg_title": "Schema migrated", "msg_text": "Migration 42 applied", "event_type": "Changes",
                       "source_type_name": "flyway", "tags": ["env:prod"], "timestamp": 1_800_000_050,
                       "context": {"category": "Changes", "source": "flyway", "data": {"version": 42},
                                   "element_identifiers": ["urn:host:/db1"], "source_links": []}}],
        "backup": [{"msg_title": "Backup", "msg_text": "Backup failed", "alert_type": "error"},
                   {"msg_title": "Backup", "msg_text": "Backup retried", "alert_type": "info"}],
    },
    "metrics": [["db.connections", 1_800_000_090, 42, {"hostname": "db1", "tags": ["pool:main"], "type": "gauge"}],
                ["db.lag", 1_800_000_090, 0.5, {"hostname": "db2", "tags": [], "type": "gauge"}]],
    "service_checks": [{"name": "db.can_connect", "status": 2, "host_name": "db2", "message": "refused",
                        "timestamp": 1_800_000_095, "tags": ["port:5432"]}],
    "topologies": [],
    "health": [],
}  # fmt: skip


def test_a_stackstate_intake_gives_change_events_metrics_and_check_results() -> None:
    events = stackstate.parse(json.dumps(INTAKE).encode(), CONTEXT)
    changes = [e for e in events if e.check and e.check.metadata.labels.get(CHANGE_LABEL) == CHANGE]
    assert [(e.entity_name, e.check_name, e.check.output, e.check.status, e.timestamp) for e in changes if e.check] == [
        ("db1", "deploy.db", "Migration 42 applied", 0, 1_800_000_050),
        ("db1", "backup", "Backup failed", 2, 1_800_000_100),
        ("db1", "backup", "Backup retried", 0, 1_800_000_100),
    ]
    assert changes[0].check is not None
    assert changes[0].check.metadata.annotations["stackstate/msg_title"] == "Schema migrated"
    assert changes[0].check.metadata.annotations["stackstate/context.data"] == '{"version": 42}'
    assert changes[0].check.metadata.labels["env"] == "prod"
    metrics = [e for e in events if e.metrics is not None]
    assert [(e.entity_name, [(p.name, p.value, [(t.name, t.value) for t in p.tags]) for p in e.metrics.points])
            for e in metrics if e.metrics] == [
        ("db1", [("db.connections", 42.0, [("pool", "main")])]), ("db2", [("db.lag", 0.5, [])])]  # fmt: skip
    (service,) = [e for e in events if e.check and CHANGE_LABEL not in e.check.metadata.labels]
    assert service.check is not None
    assert (service.entity_name, service.check_name, service.check.status, service.check.output) == (
        "db2", "db.can_connect", 2, "refused")  # fmt: skip


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"events": {"hostEvent": [{"msg_title": "t", "msg_text": "x"}]}},
         "events.hostEvent: event names must not start with the reserved prefix 'host'"),
        ({"events": {"e": [{"msg_title": "t"}]}}, r"events.e\[0\].msg_text: required"),
        ({"service_checks": [{"name": "c", "status": 7}]}, r"service_checks\[0\].status: expected 0, 1, 2 or 3, got 7"),
        ({"metrics": [["m", 1, "x", {}]]}, r"metrics\[0\]\[2\]: expected a number, got 'x'"),
        ({"collection_timestamp": "now"}, "collection_timestamp: expected seconds since the epoch"),
    ],
)  # fmt: skip
def test_bad_intakes_name_the_field(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        stackstate.parse(json.dumps({"internalHostname": "h", **change}).encode(), CONTEXT)


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"collection_timestamp": 1e300}, "collection_timestamp"),
        (
            {"events": {"deploy": [{"msg_title": "t", "msg_text": "x", "timestamp": 1e300}]}},
            "events.deploy[0].timestamp",
        ),
        ({"metrics": [["load", -1e19, 1.0, {"hostname": "db1"}]]}, "metrics[0][1]"),
    ],
)
def test_stackstate_timestamps_past_any_calendar_are_refused_naming_the_field(
    body: dict[str, object], path: str
) -> None:
    # int(1e300) is an integer no store or wire can hold: it used to reach the event processor
    with pytest.raises(ValidationError, match=rf"^{re.escape(path)}: .* is out of range"):
        stackstate.parse(json.dumps({"internalHostname": "db1", **body}).encode(), CONTEXT)


def test_a_host_and_type_in_another_script_become_names_sensu_go_takes() -> None:
    """Free text made a name keeps ASCII letters, digits and ``_.-:``, and nothing else, as Sensu
    Go's name rule does (its ``\\w`` is ASCII): the event is stored, not refused."""
    body = {"message": "Bereitgestellt", "type": "d\u00e9ploiement", "host": "caf\u00e9-01"}
    (event,) = sematext.parse(json.dumps(body).encode(), CONTEXT, many=False)
    assert event.entity is not None
    assert event.check is not None
    assert (event.entity.name, event.check.metadata.name) == ("caf_-01", "d_ploiement")
    event.validate()

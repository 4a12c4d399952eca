"""The pure mapping of Docker Engine events to change events, over real event JSON recorded from
dockerd 20.10 (tests/unit/data/docker_events.jsonl: containers created, run, exec'd, renamed,
health-checked, paused, stopped, killed, OOM-killed and destroyed; networks, volumes and images;
a daemon reload), and the resume point of the stream."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.core.host.docker import (
    MAX_ATTRIBUTES,
    NANOS,
    OBJECT_TYPES,
    DockerEvent,
    ResumePoint,
    check_name,
    output_of,
    parse_line,
    status_of,
    to_event,
)
from pipeline.core.push.common import CHANGE, CHANGE_LABEL
from pipeline.errors import ValidationError
from pipeline.model import Entity, ObjectMeta
from pipeline.model.meta import validate_name

RECORDED = Path(__file__).parent / "data" / "docker_events.jsonl"
ENTITY = Entity(metadata=ObjectMeta(name="host1", namespace="ops"))


def recorded() -> list[bytes]:
    return [line for line in RECORDED.read_bytes().splitlines() if line.strip()]


def first(type_: str, action: str, **attributes: str) -> DockerEvent:
    """The first recorded event of ``type_`` whose action starts with ``action``."""
    for line in recorded():
        event = parse_line(line)
        matches = all(event.attributes.get(k) == v for k, v in attributes.items())
        if event.type == type_ and event.action.startswith(action) and matches:
            return event
    raise AssertionError(f"no recorded {type_} {action} {attributes}")


def line(**fields: Any) -> bytes:
    document = {"Type": "container", "Action": "start", "Actor": {"ID": "abc", "Attributes": {"name": "web"}},
                "scope": "local", "time": 1700000000, "timeNano": 1700000000123456789}  # fmt: skip
    document.update(fields)
    return json.dumps(document).encode()


def test_every_recorded_event_maps_to_a_valid_change_event_of_the_agents_entity() -> None:
    for raw in recorded():
        event = to_event(ENTITY, parse_line(raw))
        validate_name(event.check.metadata.name, "check.metadata.name")
        assert event.check.metadata.name.startswith("docker-")
        assert event.check.output.startswith("Docker Event: ")
        assert event.entity is ENTITY
        assert event.check.metadata.namespace == "ops"
        assert event.check.metadata.labels[CHANGE_LABEL] == CHANGE
        assert event.check.metadata.labels["container.type"] == "docker"
        assert event.timestamp == json.loads(raw)["time"]


def test_check_names_are_the_type_and_the_actions_first_word() -> None:
    names = {check_name(parse_line(raw)) for raw in recorded()}
    assert names == {
        "docker-container-create", "docker-container-attach", "docker-container-start", "docker-container-die",
        "docker-container-destroy", "docker-container-exec_create", "docker-container-exec_start",
        "docker-container-exec_die", "docker-container-rename", "docker-container-health_status",
        "docker-container-pause", "docker-container-unpause", "docker-container-kill", "docker-container-stop",
        "docker-container-oom", "docker-network-create", "docker-network-connect", "docker-network-disconnect",
        "docker-network-destroy", "docker-volume-create", "docker-volume-mount", "docker-volume-unmount",
        "docker-volume-destroy", "docker-image-tag", "docker-image-untag", "docker-image-import",
        "docker-image-delete", "docker-daemon-reload",
    }  # fmt: skip


def test_an_exec_is_named_by_its_first_word_and_its_command_stays_out_of_the_output() -> None:
    event = first("container", "exec_start: sh -c exit 0")
    result = to_event(ENTITY, event)
    assert result.check.metadata.name == "docker-container-exec_start"
    assert result.check.output == "Docker Event: container exec_start cap1 (image busybox:latest)"
    assert result.check.metadata.labels["container.status"] == "exec_start"
    assert result.check.metadata.annotations["docker/action"] == "exec_start: sh -c exit 0"


@pytest.mark.parametrize("health", ["healthy", "unhealthy"])
def test_a_health_status_is_one_check_with_the_health_as_a_label(health: str) -> None:
    result = to_event(ENTITY, first("container", f"health_status: {health}"))
    assert result.check.metadata.name == "docker-container-health_status"
    assert result.check.metadata.labels["docker.health_status"] == health
    assert result.check.output.startswith("Docker Event: container health_status cap")
    assert f"({health}, image busybox:latest)" in result.check.output
    assert result.check.status == 0


@pytest.mark.parametrize(
    ("type_", "action", "attributes", "status"),
    [
        ("container", "oom", {"name": "oomtest"}, 2),
        ("container", "die", {"name": "oomtest", "exitCode": "137"}, 2),
        ("container", "die", {"name": "capdie", "exitCode": "3"}, 2),
        ("container", "die", {"exitCode": "0"}, 0),
        ("container", "exec_die", {"exitCode": "1"}, 0),  # a failing exec (a health check) is no crash
        ("container", "kill", {"signal": "9"}, 0),
        ("container", "destroy", {}, 0),
        ("image", "delete", {}, 0),
        ("network", "disconnect", {}, 0),
    ],
)
def test_oom_and_a_non_zero_die_are_critical_the_rest_ok(
    type_: str, action: str, attributes: dict[str, str], status: int
) -> None:
    event = first(type_, action, **attributes)
    assert status_of(event) == status
    assert to_event(ENTITY, event).check.status == status


def test_container_events_carry_sematexts_container_tags() -> None:
    event = first("container", "die", name="oomtest")
    result = to_event(ENTITY, event)
    labels = result.check.metadata.labels
    assert labels["container.object"] == "container"
    assert labels["container.status"] == "die"
    assert labels["container.name"] == "oomtest"
    assert labels["container.id"] == event.actor_id
    assert labels["container.image.name"] == labels["container.image"] == "busybox:latest"
    assert labels["docker.exit_code"] == "137"
    assert result.check.output == "Docker Event: container die oomtest (exit code 137, image busybox:latest)"
    assert json.loads(result.check.metadata.annotations["docker/attributes"]) == event.attributes


def test_oom_kill_and_rename_say_what_happened() -> None:
    assert output_of(first("container", "oom", name="oomtest")) == (
        "Docker Event: container oom oomtest (out of memory, image busybox:latest)"
    )
    assert output_of(first("container", "kill", name="nettest")) == (
        "Docker Event: container kill nettest (signal 9, image busybox:latest)"
    )
    rename = to_event(ENTITY, first("container", "rename"))
    assert rename.check.output == "Docker Event: container rename cap2 (was cap1, image busybox:latest)"
    assert rename.check.metadata.labels["container.name"] == "cap2"


def test_network_and_volume_events_name_the_container_they_concern() -> None:
    connect = first("network", "connect", name="capnet")
    result = to_event(ENTITY, connect)
    assert (
        result.check.output
        == f"Docker Event: network connect capnet (container {connect.attributes['container'][:12]})"
    )
    assert result.check.metadata.labels["container.id"] == connect.attributes["container"]
    assert result.check.metadata.labels["docker.object.name"] == "capnet"
    assert "container.name" not in result.check.metadata.labels
    mount = to_event(ENTITY, first("volume", "mount"))
    assert mount.check.output.startswith("Docker Event: volume mount capvol (container ")
    assert mount.check.metadata.labels["docker.object.id"] == "capvol"


def test_image_events_name_the_image() -> None:
    tag = to_event(ENTITY, first("image", "tag", name="busybox:captag"))
    assert tag.check.output == "Docker Event: image tag busybox:captag"
    assert tag.check.metadata.labels["container.image.name"] == "busybox:captag"
    untag = first("image", "untag")
    assert output_of(untag) == f"Docker Event: image untag {untag.actor_id.removeprefix('sha256:')[:12]}"


def test_the_daemon_reload_names_the_daemon() -> None:
    assert output_of(first("daemon", "reload")) == "Docker Event: daemon reload vm"


@pytest.mark.parametrize("type_", OBJECT_TYPES)
def test_every_object_type_maps_the_same_way(type_: str) -> None:
    # Swarm (service, node, secret, config) and plugins do not run here; their events have this shape.
    event = parse_line(line(Type=type_, Action="update", Actor={"ID": "x1", "Attributes": {"name": "thing"}}))
    result = to_event(ENTITY, event)
    assert result.check.metadata.name == f"docker-{type_}-update"
    assert result.check.output == f"Docker Event: {type_} update thing"
    assert result.check.metadata.labels["container.object"] == type_
    assert result.check.status == 0


def test_an_unexpected_action_still_makes_a_valid_check_name() -> None:
    event = parse_line(line(Action="weird action/with slashes: arg"))
    assert check_name(event) == "docker-container-weird_action_with_slashes"


def test_a_container_with_many_labels_keeps_its_event_small() -> None:
    attributes = {f"com.example.label{i}": "v" * 2000 for i in range(100)} | {"name": "big", "image": "x"}
    result = to_event(ENTITY, parse_line(line(Actor={"ID": "abc", "Attributes": attributes})))
    annotations = result.check.metadata.annotations
    assert len(annotations["docker/attributes"]) <= MAX_ATTRIBUTES + 100
    assert int(annotations["docker/attributes_dropped"]) > 0
    assert all(len(value) <= 1024 for value in json.loads(annotations["docker/attributes"]).values())


def test_non_string_attributes_are_kept_as_json() -> None:
    event = parse_line(line(Actor={"ID": "abc", "Attributes": {"name": "web", "replicas": 3}}))
    assert event.attributes["replicas"] == "3"


def test_time_falls_back_to_seconds() -> None:
    assert parse_line(line(timeNano=None)).time_nano == 1700000000 * NANOS


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        (b'{"Type": "container", "Action": "st', ""),
        (b"[1, 2]", ""),
        (b"\xff\xfe", ""),
        (line(Type=""), "Type"),
        (line(Action=7), "Action"),
        (line(Actor=[]), "Actor"),
        (line(Actor={"ID": 5}), "Actor.ID"),
        (line(Actor={"ID": "a", "Attributes": "x"}), "Actor.Attributes"),
        (line(timeNano=-1), "timeNano"),
        (line(timeNano=True), "timeNano"),
        (line(timeNano=None, time=None), "timeNano"),
    ],
)
def test_a_line_that_is_not_an_event_is_refused_naming_the_field(raw: bytes, path: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_line(raw)
    assert caught.value.path == path


def test_the_same_event_has_the_same_identity_whatever_its_key_order() -> None:
    document = json.loads(line())
    reordered = json.dumps(dict(reversed(list(document.items())))).encode()
    assert parse_line(line()).identity == parse_line(reordered).identity
    assert parse_line(line()).identity != parse_line(line(timeNano=1700000000123456790)).identity


def test_the_resume_point_resumes_at_the_last_instant_and_skips_what_was_sent() -> None:
    resume = ResumePoint()
    assert resume.since() is None  # first start: live events only
    events = [parse_line(raw) for raw in recorded()[:5]]
    for event in events:
        assert not resume.is_duplicate(event)
        resume.record(event)
    newest = max(event.time_nano for event in events)
    assert resume.since() == f"{newest // NANOS}.{newest % NANOS:09d}"
    # Docker replays from that instant: what it replays of that second was sent already
    assert all(resume.is_duplicate(event) for event in events if event.time == newest // NANOS)


def test_the_resume_point_forgets_a_second_once_a_later_one_comes() -> None:
    resume = ResumePoint()
    early = parse_line(line(timeNano=1700000000 * NANOS + 5))
    late = parse_line(line(timeNano=1700000001 * NANOS + 1))
    resume.record(early)
    resume.record(late)
    assert resume.seen == {late.identity: None}
    assert resume.since() == "1700000001.000000001"
    resume.record(early)  # out of order: it cannot be replayed, so it is not kept
    assert resume.since() == "1700000001.000000001"
    assert early.identity not in resume.seen


def test_a_bad_line_is_remembered_so_its_replay_is_skipped() -> None:
    resume = ResumePoint()
    resume.record_bad(b"{not json\n")
    assert resume.is_bad(b"{not json")
    assert not resume.is_bad(b"{other")


def test_the_resume_point_round_trips_and_refuses_a_bad_file() -> None:
    resume = ResumePoint()
    resume.record(parse_line(line()))
    resume.record_bad(b"junk")
    again = ResumePoint.from_json(json.loads(json.dumps(resume.to_json())))
    assert again == resume
    with pytest.raises(ValidationError, match="time_nano"):
        ResumePoint.from_json({"time_nano": "soon"})
    with pytest.raises(ValidationError, match="seen"):
        ResumePoint.from_json({"time_nano": 1, "seen": [1]})
    with pytest.raises(ValidationError):
        ResumePoint.from_json([])

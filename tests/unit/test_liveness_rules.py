"""Keepalive, ttl, redaction and agent credentials: the pure rules, as Sensu Go applies them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.backend.auth import AgentCredentials, AuthenticationError, parse_user
from pipeline.core.deadlines import Deadlines
from pipeline.core.keepalive import (
    deregistration_events,
    failing_keepalive,
    keepalive_check,
    keepalive_deadline,
    keepalive_status,
    passing_keepalive,
    registration_event,
    ttl_expired,
)
from pipeline.core.redact import DEFAULT_REDACT, REDACTED, is_redacted, redacted_entity
from pipeline.model import Check, Entity, Event, ObjectMeta
from pipeline.model.entity import Deregistration

T0 = 1_800_000_000.0


def test_deadlines_pop_in_order_and_forget_moved_and_cancelled_keys() -> None:
    d: Deadlines[str] = Deadlines()
    d.set("a", 30)
    d.set("b", 10)
    d.set("c", 20)
    d.set("a", 5)  # moved earlier
    d.cancel("c")
    assert d.next_at() == 5
    assert d.pop_due(15) == ["a", "b"]
    assert d.pop_due(100) == []
    assert len(d) == 0
    assert d.next_at() is None


@given(st.lists(st.tuples(st.sampled_from("abcdef"), st.integers(0, 100)), max_size=40), st.integers(0, 100))
def test_deadlines_due_are_exactly_the_latest_settings_at_or_before_now(sets: list[tuple[str, int]], now: int) -> None:
    d: Deadlines[str] = Deadlines()
    latest: dict[str, int] = {}
    for key, at in sets:
        d.set(key, at)
        latest[key] = at
    due = d.pop_due(now)
    assert sorted(due) == sorted(k for k, at in latest.items() if at <= now)
    assert [latest[k] for k in due] == sorted(latest[k] for k in due)
    remaining = [at for k, at in latest.items() if at > now]
    assert d.next_at() == (min(remaining) if remaining else None)


def test_keepalive_status_by_silence() -> None:
    assert keepalive_status(119, 120, 240) == 0
    assert keepalive_status(120, 120, 240) == 1
    assert keepalive_status(240, 120, 240) == 2
    assert keepalive_status(1000, 120, 0) == 1  # critical off
    assert keepalive_status(1000, 0, 0) == 0  # not watched


def test_keepalive_deadlines_walk_the_thresholds_then_repeat_every_warning_timeout() -> None:
    assert keepalive_deadline(T0, T0, 120, 240) == T0 + 120
    assert keepalive_deadline(T0, T0 + 120, 120, 240) == T0 + 240  # warning emitted: critical next
    assert keepalive_deadline(T0, T0 + 240, 120, 240) == T0 + 360  # critical emitted: every 120 s
    assert keepalive_deadline(T0, T0 + 120, 120, 400) == T0 + 240  # repeats before critical, too
    assert keepalive_deadline(T0, T0, 0, 0) is None


def agent(name: str = "web1", **kwargs: object) -> Entity:
    return Entity(entity_class="agent", metadata=ObjectMeta(name=name, namespace="default"), **kwargs)  # type: ignore[arg-type]


def keepalive(now: float, entity: Entity | None = None) -> Event:
    check = keepalive_check(20, 120, 240, "default", now)
    return Event(timestamp=int(now), entity=entity or agent(), check=check, metadata=ObjectMeta(namespace="default"),
                 id="k1")  # fmt: skip


def test_a_keepalive_is_stored_passing_with_sensu_s_output_and_handlers() -> None:
    event = passing_keepalive(keepalive(T0 - 3), T0)
    assert event.check is not None
    assert event.entity is not None
    assert (event.check.status, event.check.timeout, event.check.ttl, event.check.interval) == (0, 120, 240, 20)
    assert event.check.output == "Keepalive last sent from web1 at 2027-01-15 08:00:00 +0000 UTC"
    assert event.check.handlers == ["keepalive"]
    assert event.entity.last_seen == int(T0)
    custom = passing_keepalive(keepalive(T0, agent(keepalive_handlers=["pager"])), T0)
    assert custom.check is not None
    assert custom.check.handlers == ["pager"]


def test_silence_fails_the_stored_keepalive_warning_then_critical() -> None:
    stored = passing_keepalive(keepalive(T0), T0)
    warning = failing_keepalive(stored, T0, T0 + 130)
    critical = failing_keepalive(stored, T0, T0 + 250)
    assert warning.check is not None
    assert critical.check is not None
    assert (warning.check.status, warning.check.output) == (1, "No keepalive sent from web1 for 130 seconds (>= 120)")
    assert (critical.check.status, critical.check.output) == (2, "No keepalive sent from web1 for 250 seconds (>= 240)")
    assert warning.id != stored.id
    assert warning.timestamp == int(T0 + 130)


def test_ttl_expiry_fails_the_stored_result_with_its_ttl_status() -> None:
    check = Check(metadata=ObjectMeta(name="backup", namespace="default"), status=0, interval=60, ttl=90,
                  executed=int(T0), output="ok")  # fmt: skip
    stored = Event(timestamp=int(T0), entity=agent(), check=check, metadata=ObjectMeta(namespace="default"), id="x")
    expired = ttl_expired(stored, T0 + 95)
    assert expired.check is not None
    assert (expired.check.status, expired.check.output) == (1, "Last check execution was 95 seconds ago")
    assert expired.check.executed == int(T0 + 95)
    check.ttl_status = 2
    assert ttl_expired(stored, T0 + 95).check.status == 2  # type: ignore[union-attr]


def test_registration_and_deregistration_events() -> None:
    entity = agent(deregistration=Deregistration(handler="cleanup"))
    registered = registration_event(entity, T0)
    assert registered.check is not None
    assert (registered.check.metadata.name, registered.check.status, registered.check.handlers) == (
        "registration", 1, ["registration"])  # fmt: skip
    stored = failing_keepalive(passing_keepalive(keepalive(T0, entity), T0), T0, T0 + 200)
    events = deregistration_events(entity, [stored], T0 + 300)
    assert [(e.check_name, e.check.status, e.check.output) for e in events if e.check] == [
        ("keepalive", 0, "Resolving due to entity deregistering"),
        ("deregistration", 1, "Entity web1 deregistered"),
    ]
    assert events[0].check is not None
    assert events[0].check.history == []
    assert events[1].check is not None
    assert events[1].check.handlers == ["cleanup"]


@pytest.mark.parametrize(
    ("key", "redacted"),
    [("password", True), ("PASSWORD", True), ("API-Key", True), ("api_key", True), ("my_secret", False),
     ("secret", True), ("region", False), ("pass", True), ("passphrase", False)],
)  # fmt: skip
def test_redaction_matches_keys_as_sensu_go_does(key: str, redacted: bool) -> None:
    assert is_redacted(key, DEFAULT_REDACT) is redacted


def test_redacted_entity_masks_labels_and_annotations_only() -> None:
    entity = agent(redact=["token"])
    entity.metadata.labels = {"token": "abc", "region": "eu"}
    entity.metadata.annotations = {"Token": "def", "password": "kept: not in this entity's list"}
    masked = redacted_entity(entity)
    assert masked.metadata.labels == {"token": REDACTED, "region": "eu"}
    assert masked.metadata.annotations == {"Token": REDACTED, "password": "kept: not in this entity's list"}
    assert entity.metadata.labels["token"] == "abc"  # the original is untouched


def test_credentials() -> None:
    open_door = AgentCredentials()
    assert open_door.authenticate({}) == ""
    creds = AgentCredentials(users={"agent": "s3cret"}, tokens=("tok-1",))
    assert creds.authenticate({"user": "agent", "password": "s3cret"}) == "agent"
    assert creds.authenticate({"token": "tok-1"}) == "token"
    for hello, message in [
        ({"user": "agent", "password": "nope"}, "authentication failed for user 'agent'"),
        ({"user": "nobody", "password": "s3cret"}, "authentication failed for user 'nobody'"),
        ({"token": "tok-2"}, "authentication failed: unknown agent token"),
        ({}, "authentication required"),
    ]:
        with pytest.raises(AuthenticationError, match=message):
            creds.authenticate(hello)
    assert parse_user("agent:pa:ss") == ("agent", "pa:ss")
    with pytest.raises(ValueError, match="USER:PASSWORD"):
        parse_user("agent")

"""Filters: Sensu Go's built-ins, the fatigue filter, and sandboxed expressions."""

from __future__ import annotations

import pytest

from pipeline.core.filtering import CompiledFilter, FilterError, fatigue, has_metrics, is_incident, not_silenced
from pipeline.core.state import apply_result
from pipeline.core.workflows import workflows_for
from pipeline.errors import ValidationError
from pipeline.model import Check, CheckHistory, Entity, Event, Metrics, ObjectMeta
from pipeline.model.meta import ResourceReference
from pipeline.model.pipeline import EventFilter, Pipeline, PipelineWorkflow
from pipeline.model.resources import Handler, Resources

MONDAY_10_UTC = 1_795_428_000  # 2026-11-23 (a Monday) 10:00:00 UTC


def event(status: int = 2, history: tuple[int, ...] = (), **check: object) -> Event:
    return Event(
        timestamp=MONDAY_10_UTC,
        entity=Entity(entity_class="agent", metadata=ObjectMeta(name="web1", namespace="default")),
        check=Check(metadata=ObjectMeta(name="disk", namespace="default"), status=status, interval=60,
                    history=[CheckHistory(s, 0) for s in (*history, status)], **check),  # type: ignore[arg-type]
        metadata=ObjectMeta(namespace="default"),
        id="e1",
    )  # fmt: skip


def test_builtins_mean_what_they_mean_in_sensu_go() -> None:
    assert is_incident(event(2))
    assert is_incident(event(0, history=(2,)))  # a resolution
    assert not is_incident(event(0, history=(0,)))
    assert not_silenced(event(2))
    assert not not_silenced(event(2, silenced=["linux:disk"]))
    assert not has_metrics(event(2))
    assert has_metrics(Event(metrics=Metrics()))


def expression_filter(action: str, *expressions: str) -> CompiledFilter:
    return CompiledFilter.of(EventFilter(metadata=ObjectMeta(name="f"), action=action, expressions=list(expressions)))


def test_allow_needs_every_expression_and_deny_any() -> None:
    first_or_hourly = expression_filter("allow", "event.check.occurrences == 1 or event.check.occurrences % 60 == 0")
    assert [o for o in range(1, 130) if first_or_hourly.apply(event(occurrences=o), 0).passed] == [1, 60, 120]
    both = expression_filter("allow", "event.check.status == 2", "event.entity.metadata.name == 'web1'")
    assert both.apply(event(2), 0).passed
    assert not both.apply(event(1), 0).passed
    deny = expression_filter("deny", "event.check.status == 1", "event.entity.metadata.name == 'db1'")
    assert deny.apply(event(2), 0).passed
    assert not deny.apply(event(1), 0).passed


def test_time_helpers_make_business_hours_one_line() -> None:
    business = expression_filter(
        "allow", "weekday(event.timestamp) in [1, 2, 3, 4, 5] and 9 <= hour(event.timestamp) < 17"
    )
    assert business.apply(event(), 0).passed
    sunday = event()
    sunday.timestamp = MONDAY_10_UTC - 86_400
    assert not business.apply(sunday, 0).passed
    evening = event()
    evening.timestamp = MONDAY_10_UTC + 8 * 3600
    assert not business.apply(evening, 0).passed
    recent = expression_filter("allow", "seconds_since(event.timestamp) < 300")
    assert recent.apply(event(), MONDAY_10_UTC + 60).passed
    assert not recent.apply(event(), MONDAY_10_UTC + 600).passed


def test_a_failing_expression_is_skipped_and_reported() -> None:
    typo = expression_filter("allow", "event.chek.status == 2", "event.check.status == 2")
    outcome = typo.apply(event(2), 0)
    assert outcome.passed  # as in Sensu Go: the failing expression is skipped
    assert outcome.errors == ["'event.chek.status == 2': UndefinedError: 'dict object' has no attribute 'chek'"]


def test_expressions_are_sandboxed() -> None:
    escape = expression_filter("allow", "event.__class__.__mro__")
    outcome = escape.apply(event(), 0)
    assert outcome.errors
    assert "SecurityError" in outcome.errors[0]


def test_an_expression_cannot_build_a_gigabyte() -> None:
    # it ran once per event in the backend's thread: a gigabyte, then the next event's
    greedy = expression_filter("allow", '("x" * 10**9) | length > 0', "event.check.output.ljust(10**9) != ''")
    outcome = greedy.apply(event(), 0)
    assert outcome.passed
    assert [error.split(": ")[1] for error in outcome.errors] == ["SecurityError", "SecurityError"]


def test_an_expression_that_does_not_parse_is_a_config_error() -> None:
    with pytest.raises(ValidationError, match=r"spec.expressions\[1\]: invalid expression 'event.check =='"):
        expression_filter("allow", "true", "event.check ==")


def test_fatigue_notifies_at_the_nth_occurrence_then_every_interval_and_on_resolution() -> None:
    annotations = {"fatigue_check/occurrences": "3", "fatigue_check/interval": "3600"}
    previous = None
    notified = []
    for i, status in enumerate([0] * 2 + [2] * 130 + [0] * 2):
        check = Check(metadata=ObjectMeta(name="disk", namespace="default", annotations=annotations), status=status,
                      interval=60, executed=i)  # fmt: skip
        previous = apply_result(check, previous)
        e = Event(entity=Entity(metadata=ObjectMeta(name="web1", namespace="default")), check=previous)
        if fatigue(e):
            notified.append((i, status, previous.occurrences))
    # third failure, then every 60 runs (3600 s at interval 60), then the resolution
    assert notified == [(4, 2, 3), (64, 2, 63), (124, 2, 123), (132, 0, 1)]


def test_fatigue_settings_come_from_the_check_then_the_entity_and_are_checked() -> None:
    e = event(2, occurrences=2)
    assert e.entity is not None
    assert e.check is not None
    e.entity.metadata.annotations = {"fatigue_check/occurrences": "2"}
    assert fatigue(e)
    e.check.metadata.annotations = {"fatigue_check/occurrences": "5"}
    assert not fatigue(e)
    e.check.metadata.annotations = {"fatigue_check/occurrences": "many"}
    with pytest.raises(FilterError, match="annotation fatigue_check/occurrences: expected a whole number, got 'many'"):
        fatigue(e)


def test_an_unnotified_incident_resolves_quietly() -> None:
    quiet = event(0, history=(2,), occurrences_watermark=1)
    assert quiet.check is not None
    quiet.check.metadata.annotations = {"fatigue_check/occurrences": "3"}
    assert not fatigue(quiet)


def test_workflows_legacy_sorted_and_pipelines_ignore_handler_filters() -> None:
    def handler(name: str, **kwargs: object) -> Handler:
        return Handler(metadata=ObjectMeta(name=name, namespace="default"), type="pipe", command="true",
                       **kwargs)  # type: ignore[arg-type]  # fmt: skip

    resources = Resources(
        handlers=[handler("slack", filters=["is_incident"], mutator="only_check_output"), handler("email"),
                  Handler(metadata=ObjectMeta(name="ops", namespace="default"), type="set", handlers=["email", "slack"])],
        pipelines=[Pipeline(metadata=ObjectMeta(name="p", namespace="default"), workflows=[
            PipelineWorkflow(name="w", handler=ResourceReference(name="slack"))])],
    )  # fmt: skip
    e = event(2)
    assert e.check is not None
    e.check.handlers = ["ops", "nowhere"]
    e.pipelines = [ResourceReference(name="p"), ResourceReference(name="ghost")]
    workflows, problems = workflows_for(e, resources)
    assert [(w.name, w.pipeline, w.filters, w.mutator) for w in workflows] == [
        ("legacy-pipeline-workflow-email", "", (), ""),
        ("legacy-pipeline-workflow-slack", "", ("is_incident",), "only_check_output"),
        ("w", "p", (), ""),
    ]
    assert [(p.reason, p.name, p.message) for p in problems] == [
        ("missing", "nowhere", "handler 'nowhere' not found"),
        ("pipeline", "ghost", "pipeline 'ghost' not found"),
    ]

"""Filters: Sensu Go's built-ins, the fatigue filter, and EventFilters in JavaScript as Sensu Go
writes them (the engine's own cases are in test_js_*.py)."""

from __future__ import annotations

import pytest
import trio

from pipeline.core.filtering import BuiltinFilters, JavaScriptFilters, has_metrics, is_incident, not_silenced
from pipeline.core.stages import FilterOutcome, StageRef
from pipeline.core.state import apply_result
from pipeline.core.workflows import workflows_for
from pipeline.errors import ValidationError
from pipeline.model import Check, CheckHistory, Entity, Event, Metrics, ObjectMeta
from pipeline.model.forms import EventForms
from pipeline.model.meta import ResourceReference
from pipeline.model.pipeline import EventFilter, Pipeline, PipelineWorkflow
from pipeline.model.resources import Handler, Resources

MONDAY_10_UTC = 1_795_428_000  # 2026-11-23 (a Monday) 10:00:00 UTC


def event(
    status: int = 2,
    history: tuple[int, ...] = (),
    check_name: str = "disk",
    labels: dict[str, str] | None = None,
    **check: object,
) -> Event:
    return Event(
        timestamp=MONDAY_10_UTC,
        entity=Entity(entity_class="agent", metadata=ObjectMeta(name="web1", namespace="default", labels=labels or {})),
        check=Check(metadata=ObjectMeta(name=check_name, namespace="default"), status=status, interval=60,
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


class ExpressionFilter:
    """One EventFilter ``f`` through the pipeline's filter adapter, as the runner applies it."""

    def __init__(self, action: str, *expressions: str) -> None:
        event_filter = EventFilter(metadata=ObjectMeta(name="f", namespace="default"), action=action,
                                   expressions=list(expressions))  # fmt: skip
        self.adapter = JavaScriptFilters([event_filter])

    def apply(self, event: Event, now: float) -> FilterOutcome:
        return trio.run(self.adapter.filter, StageRef("f", "default"), EventForms(event), now)


def test_allow_needs_every_expression_and_deny_any() -> None:
    # Sensu's documentation: the first occurrence, then every hour of a 1-minute check
    first_or_hourly = ExpressionFilter("allow", "event.check.occurrences == 1 || event.check.occurrences % 60 == 0")
    assert [o for o in range(1, 130) if first_or_hourly.apply(event(occurrences=o), 0).passed] == [1, 60, 120]
    both = ExpressionFilter("allow", "event.check.status == 2", "event.entity.name == 'web1'")
    assert both.apply(event(2), 0).passed
    assert not both.apply(event(1), 0).passed
    deny = ExpressionFilter("deny", "event.check.status == 1", "event.entity.name == 'db1'")
    assert deny.apply(event(2), 0).passed
    assert not deny.apply(event(1), 0).passed


def test_the_sensu_spelling_of_names_and_labels_means_what_it_says() -> None:
    """The issue's two examples: both let everything through before."""
    cpu_only = ExpressionFilter("allow", "event.check.name == 'check-cpu'")
    assert cpu_only.apply(event(check_name="check-cpu"), 0).passed
    assert not cpu_only.apply(event(check_name="check-disk"), 0).passed
    production = ExpressionFilter("allow", "event.entity.labels['environment'] == 'production'")
    assert production.apply(event(labels={"environment": "production"}), 0).passed
    assert not production.apply(event(labels={"environment": "staging"}), 0).passed
    unlabelled = production.apply(event(), 0)
    assert (unlabelled.passed, unlabelled.errors) == (False, [])  # undefined, not an error


def test_time_helpers_make_business_hours_one_line() -> None:
    business = ExpressionFilter(
        "allow", "weekday(event.timestamp) >= 1 && weekday(event.timestamp) <= 5",
        "hour(event.timestamp) >= 9 && hour(event.timestamp) < 17",
    )  # fmt: skip
    assert business.apply(event(), 0).passed
    sunday = event()
    sunday.timestamp = MONDAY_10_UTC - 86_400
    assert not business.apply(sunday, 0).passed
    evening = event()
    evening.timestamp = MONDAY_10_UTC + 8 * 3600
    assert not business.apply(evening, 0).passed
    recent = ExpressionFilter("allow", "seconds_since(event.timestamp) < 300")
    assert recent.apply(event(), MONDAY_10_UTC + 60).passed
    assert not recent.apply(event(), MONDAY_10_UTC + 600).passed


def test_a_failing_expression_is_skipped_and_reported() -> None:
    typo = ExpressionFilter("allow", "event.chek.status == 2", "event.check.status == 2")
    outcome = typo.apply(event(2), 0)
    assert outcome.passed  # as in Sensu Go: the failing expression is skipped
    (error,) = outcome.errors
    assert error == "'event.chek.status == 2': TypeError: cannot read property 'status' of undefined"


def test_expressions_are_sandboxed_and_bounded() -> None:
    escape = ExpressionFilter("allow", "require('fs')", "this.process.exit(1)")
    assert [e.split(": ")[1] for e in escape.apply(event(), 0).errors] == ["ReferenceError", "TypeError"]
    # they run once per event in the backend: a runaway and a gigabyte are stopped, and the next runs
    greedy = ExpressionFilter("allow", "while (true) {}", "'x'.repeat(1e9).length > 0", "event.check.status == 2")
    outcome = greedy.apply(event(), 0)
    assert outcome.passed
    assert len(outcome.errors) == 2


def test_an_expression_that_does_not_parse_is_a_config_error() -> None:
    with pytest.raises(ValidationError, match=r"spec.expressions\[1\]: invalid JavaScript 'event.check =='"):
        ExpressionFilter("allow", "true", "event.check ==")


def fatigue(e: Event) -> bool:
    outcome = trio.run(BuiltinFilters().filter, StageRef("fatigue", "default"), EventForms(e), 0)
    assert outcome.errors == []
    return outcome.passed


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
    # third failure, then whenever the occurrences are a multiple of 60 runs (3600 s at interval
    # 60, Sensu's fatigue-check-filter counts from zero), then the resolution
    assert notified == [(4, 2, 3), (61, 2, 60), (121, 2, 120), (132, 0, 1)]


def test_fatigue_settings_come_from_the_entity_then_the_check() -> None:
    e = event(2, occurrences=2)
    assert e.entity is not None
    assert e.check is not None
    e.check.metadata.annotations = {"fatigue_check/occurrences": "2"}
    assert fatigue(e)
    e.entity.metadata.annotations = {"fatigue_check/occurrences": "5"}
    assert not fatigue(e)  # as in Sensu's asset, the entity's annotation wins


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

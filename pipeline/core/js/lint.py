"""What ``pipeline validate`` can say about a filter's expressions without real events: run each
against sample events of the three shapes Sensu Go sends (a check result, metrics only, both) and
report the ones that fail on every one of them, or that read neither the event nor the clock and
are false (they can never be true). An expression that is false on all samples but reads the event is not
reported: ``event.check.name == 'check-cpu'`` is false for the samples and right."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline.core.js import engine
from pipeline.core.js.filters import JsFilter
from pipeline.core.js.synth import filter_input
from pipeline.errors import ScriptError
from pipeline.model import Check, CheckHistory, Entity, Event, Metrics, ObjectMeta
from pipeline.model.metrics import MetricPoint

# what can make an expression's value change: the event, the clock, chance
_VARIES = re.compile(r"event|Date|seconds_since|random")


def sample_events(now: int) -> dict[str, Event]:
    """A failing check result, a metrics-only event and one with both, about an agent entity."""

    def entity() -> Entity:
        return Entity(
            entity_class="agent", metadata=ObjectMeta(name="sample", namespace="default"), subscriptions=["linux"]
        )

    def check() -> Check:
        return Check(
            metadata=ObjectMeta(name="sample-check", namespace="default"),
            command="true",
            interval=60,
            status=2,
            occurrences=1,
            occurrences_watermark=1,
            executed=now,
            issued=now,
            output="CRITICAL",
            history=[CheckHistory(0, now - 60), CheckHistory(2, now)],
        )

    def metrics() -> Metrics:
        return Metrics(handlers=[], points=[MetricPoint(name="sample.value", value=1.0, timestamp=now)])

    return {
        "check": Event(timestamp=now, entity=entity(), check=check()),
        "metrics": Event(timestamp=now, entity=entity(), metrics=metrics()),
        "check and metrics": Event(timestamp=now, entity=entity(), check=check(), metrics=metrics()),
    }


@dataclass(slots=True, frozen=True)
class Finding:
    """One expression that will not do what its author meant (``index`` in ``spec.expressions``)."""

    index: int
    source: str
    problem: str


def lint_filter(js_filter: JsFilter, now: int) -> list[Finding]:
    """The expressions that fail on every sample event, or read nothing of it and are false."""
    samples = [filter_input(event) for event in sample_events(now).values()]
    findings = []
    for index, expression in enumerate(js_filter.expressions):
        errors: list[ScriptError] = []
        results: list[bool] = []
        for sample in samples:
            try:
                results.append(engine.run_filter(expression.source, sample.json(), now, js_filter.limits))
            except ScriptError as exc:
                errors.append(exc)
        if len(errors) == len(samples):
            findings.append(Finding(index, expression.source, f"fails on every sample event: {errors[0].message}"))
        elif not any(results) and not _VARIES.search(expression.source):
            findings.append(Finding(index, expression.source, "reads nothing of the event and is false: never true"))
    return findings

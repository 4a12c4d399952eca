"""Sandboxed event templates: the Sensu JSON in scope, missing fields empty, errors named."""

from __future__ import annotations

import json

import pytest
from jinja2.exceptions import SecurityError

from pipeline.core.templates import RenderError, compile_template, render
from pipeline.errors import ValidationError
from pipeline.model import Check, Entity, Event, MetricPoint, Metrics, ObjectMeta


def check_event(output: str = "DISK CRITICAL - / at 97%\n") -> Event:
    return Event(
        entity=Entity(metadata=ObjectMeta(name="web1", namespace="default")),
        check=Check(metadata=ObjectMeta(name="disk", namespace="default"), output=output, status=2, state="failing"),
        id="0b7c1e1a-7f0e-4b8e-9b52-8f1a3c2d4e5f",
    )


def metrics_event() -> Event:
    return Event(
        entity=Entity(metadata=ObjectMeta(name="web1", namespace="default")),
        metrics=Metrics(points=[MetricPoint(name="cpu.idle", value=97.5, timestamp=1700000000)]),
    )


def rendered(text: str, event: Event) -> str:
    return render(compile_template(text, "body_template"), event)


def test_templates_see_the_event_as_its_sensu_json() -> None:
    text = "{{ event.entity.metadata.name }}/{{ event.check.metadata.name }} {{ event.check.status }}: {{ event.check.output }}"
    assert rendered(text, check_event()) == "web1/disk 2: DISK CRITICAL - / at 97%\n"
    assert (
        rendered("{{ event.metrics.points[0].name }} {{ event.metrics.points | length }}", metrics_event())
        == "cpu.idle 1"
    )


def test_missing_fields_render_empty() -> None:
    assert rendered("[{{ event.check.output }}|{{ event.check.metadata.name }}]", metrics_event()) == "[|]"
    assert rendered("[{{ event.no.such.field }}]", check_event()) == "[]"
    assert rendered("{{ event.check.nothing | default('n/a') }}", check_event()) == "n/a"


def test_event_data_is_never_rendered() -> None:
    assert rendered("{{ event.check.output }}", check_event("{{ 7 * 7 }} {% raw %}")) == "{{ 7 * 7 }} {% raw %}"


def test_tojson_writes_values_and_missing_fields_as_json() -> None:
    output = 'quote " newline \n <tag> & ünïcode'
    event = check_event(output)
    assert json.loads(rendered("{{ event.check.output | tojson }}", event)) == output
    assert json.loads(rendered("{{ event | tojson }}", event)) == event.to_dict()
    assert rendered("{{ event.check.nothing | tojson }}", event) == "null"
    assert rendered('{"text": {{ event.check.output | tojson }}}', event) == json.dumps(
        {"text": output}, ensure_ascii=False
    )


@pytest.mark.parametrize("text", ["{{ event.check.output ", "{% if %}x{% endif %}", "{{ event | nosuchfilter }}"])
def test_a_syntax_error_names_the_option(text: str) -> None:
    with pytest.raises(ValidationError, match=r"^subject_template: template syntax error on line 1: ") as caught:
        compile_template(text, "subject_template")
    assert caught.value.path == "subject_template"


def test_a_template_that_is_not_a_string_names_the_option() -> None:
    with pytest.raises(ValidationError, match=r"^body_template: expected a template string, got 42$"):
        compile_template(42, "body_template")  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["{{ event.__class__ }}", "{{ ''.__class__.__mro__ }}", "{{ '{0.__class__}'.format(event) }}",
                                  "{{ event.check.__init__.__globals__ }}", "{{ cycler.__init__.__globals__.os }}"])  # fmt: skip
def test_the_sandbox_hides_internal_attributes(text: str) -> None:
    assert rendered(text, check_event()) == ""


@pytest.mark.parametrize("text", ["{{ ''.__class__.__mro__[1].__subclasses__() }}", "{{ event.update({'check': None}) }}",
                                  "{{ event.check.clear() }}"])  # fmt: skip
def test_the_sandbox_refuses_to_reach_python_or_change_the_event(text: str) -> None:
    event = check_event()
    with pytest.raises(RenderError, match=r"^body_template: SecurityError: ") as caught:
        rendered(text, event)
    assert isinstance(caught.value.__cause__, SecurityError)
    assert event.check is not None
    assert event.check.output == "DISK CRITICAL - / at 97%\n"


def test_a_runtime_error_names_the_template() -> None:
    template = compile_template("{{ event.check.status / 0 }}", "body_template")
    with pytest.raises(RenderError, match=r"^body_template: ZeroDivisionError: division by zero$") as caught:
        render(template, check_event())
    assert caught.value.name == "body_template"

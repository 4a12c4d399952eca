"""Sandboxed event templates: the Sensu JSON in scope, missing fields empty, errors named."""

from __future__ import annotations

import json
import re

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


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{{ "x" * 10**9 }}', "repeating 1 items 1000000000 times is larger than a template may make"),
        ("{{ [1] * 10**8 }}", "repeating 1 items 100000000 times"),
        ("{{ 9 ** (9 ** 9) }}", "the power 387420489"),
        ('{{ "x".ljust(10**9) }}', "the argument 1000000000"),
        ('{{ "x".zfill(10**9) }}', "the argument 1000000000"),
        ('{{ "{:>999999999}".format(1) }}', "the argument 999999999"),
        ('{{ "{:{w}}".format(1, w=10**9) }}', "a nested '{}' in a format spec"),
        ('{{ "x" | center(10**9) }}', "the argument 1000000000"),
        ("{{ [1, 2] | slice(10**9) | list }}", "the argument 1000000000"),
        ('{{ "%999999999d" % 1 }}', "the argument 999999999"),
        ('{{ "%*d" % (10**9, 1) }}', "a '*' width or precision"),
        ('{{ "%999999999d" | format(1) }}', "the argument 999999999"),
        ("{% for i in range(99999) %}{% for j in range(99999) %}x{% endfor %}{% endfor %}",
         "the template wrote more than 4194304 characters"),
        ("{{ lipsum(10**6) }}", "'lipsum' is undefined"),
    ],
)  # fmt: skip
def test_a_template_cannot_make_a_gigabyte_or_write_without_end(text: str, reason: str) -> None:
    # each of these built a gigabyte in the backend's own thread (or wrote for minutes) before
    with pytest.raises(RenderError, match=re.escape(reason)):
        rendered(text, check_event())


def test_ordinary_formatting_stays_possible() -> None:
    text = ('{{ "%.1f" | format(event.timestamp) }} {{ "{:.2f} {}".format(3.14159, event.timestamp) }} '
            '{{ "x" | center(7) }} {{ 2 ** 10 }} {{ "ab" * 3 }} {{ "%05d" % 42 }} {{ ("-" * 72) | length }}')  # fmt: skip
    event = check_event()
    event.timestamp = 1_700_000_000
    assert rendered(text, event) == "1700000000.0 3.14 1700000000    x    1024 ababab 00042 72"

"""Sensu Go's filter expressions in JavaScript: the documentation's examples, the synthesized
event, and how expressions combine and fail (pipeline/core/js/filters.py)."""

from __future__ import annotations

import pytest

from pipeline.core.js import compile_filter, filter_input, synthesize
from pipeline.core.js.filters import JsFilter, _Expression
from pipeline.errors import ScriptError, ValidationError
from tests.unit.js_events import MONDAY_EVENING, make_event

NOW = MONDAY_EVENING + 30
SUNDAY_NOON = 1_520_164_800  # Sunday 4 March 2018 12:00 UTC


def passes(expressions: list[str] | str, event: object, action: str = "allow", now: float = NOW) -> bool:
    if isinstance(expressions, str):
        expressions = [expressions]
    verdict = compile_filter(expressions, "spec.expressions", action).evaluate(event, now)  # type: ignore[arg-type]
    assert verdict.errors == [], verdict.errors
    return verdict.passed


# The examples of Sensu Go's event filter reference and guides, each with an event that passes and
# one that does not.
DOCUMENTED = [
    ("event.check.occurrences == 1", make_event(occurrences=1), make_event(occurrences=2)),
    ("event.check.status == 0", make_event(status=0), make_event(status=2)),
    ("event.check.status != 0", make_event(status=1), make_event(status=0)),
    ("event.check.name == 'check-cpu'", make_event(name="check-cpu"), make_event(name="check-disk")),
    (
        "event.entity.labels['environment'] == 'production'",
        make_event(entity_labels={"environment": "production"}),
        make_event(entity_labels={"environment": "staging"}),
    ),
    (
        "event.entity.labels.environment == 'production'",
        make_event(entity_labels={"environment": "production"}),
        make_event(),  # unlabelled: undefined, not an error
    ),
    (
        "event.check.labels.environment == 'production'",
        make_event(check_labels={"environment": "production"}),
        make_event(check_labels={"team": "ops"}),
    ),
    ("event.entity.system.os === 'linux'", make_event(os="linux"), make_event(os="windows")),
    ("event.entity.system.hostname == 'web1.example.com'", make_event(), None),
    ("event.has_metrics", make_event(metrics=True), make_event()),
    ("event.has_check", make_event(), make_event(check=False, metrics=True)),
    ("event.is_incident", make_event(status=2), make_event(status=0)),
    ("event.is_resolution", make_event(status=0, history=[2, 0]), make_event(status=0, history=[0, 0])),
    ("event.is_silenced", make_event(silenced=["linux:check-cpu"]), make_event()),
    (
        "hour(event.check.executed) >= 17",
        make_event(executed=MONDAY_EVENING),
        make_event(executed=MONDAY_EVENING - 12 * 3600),
    ),
    ("weekday(event.timestamp) == 0", make_event(timestamp=SUNDAY_NOON), make_event(timestamp=MONDAY_EVENING)),
    (
        "weekday(event.timestamp) >= 1 && weekday(event.timestamp) <= 5",
        make_event(timestamp=MONDAY_EVENING),
        make_event(timestamp=SUNDAY_NOON),
    ),
    (
        "hour(event.timestamp) >= 9 && hour(event.timestamp) <= 17",
        make_event(timestamp=MONDAY_EVENING - 6 * 3600),
        make_event(timestamp=MONDAY_EVENING),
    ),
    (
        "event.check.occurrences == 1 || event.check.occurrences % (3600 / event.check.interval) == 0",
        make_event(occurrences=120),
        make_event(occurrences=2),
    ),
    ("seconds_since(event.check.last_ok) > 300", make_event(last_ok=NOW - 600), make_event(last_ok=NOW - 60)),
    ("event.check.output.indexOf('OK') !== -1", make_event(), make_event(output="CPU CRITICAL")),
    (
        "event.check.status != 0 && event.entity.labels.environment === 'production' && event.check.occurrences <= 3",
        make_event(status=2, occurrences=3, entity_labels={"environment": "production"}),
        make_event(status=2, occurrences=4, entity_labels={"environment": "production"}),
    ),
]


@pytest.mark.parametrize(("expression", "passing", "failing"), DOCUMENTED, ids=[d[0] for d in DOCUMENTED])
def test_the_documented_expressions_pass_and_fail_as_in_sensu_go(
    expression: str, passing: object, failing: object
) -> None:
    assert passes(expression, passing)
    if failing is not None:
        assert not passes(expression, failing)


def test_the_issue_s_filters_now_keep_their_meaning() -> None:
    # issue 15: check-disk got through `event.check.name == 'check-cpu'`, staging and unlabelled
    # hosts through the environment filter
    assert not passes("event.check.name == 'check-cpu'", make_event(name="check-disk"))
    environment = "event.entity.labels['environment'] == 'production'"
    assert not passes(environment, make_event(entity_labels={"environment": "staging"}))
    assert not passes(environment, make_event())


def test_time_functions_are_utc_as_sensu_go_s_own_tests_say() -> None:
    # sensu-go js/js_test.go TestTimeFunctions: 7323 s is 02:02:03
    event = make_event(timestamp=7323)
    assert passes("hour(event.timestamp) == 2 && minute(event.timestamp) == 2 && second(event.timestamp) == 3", event)
    assert passes("seconds_since(event.timestamp) > 10000", event, now=7323 + 10001)
    assert not passes("seconds_since(event.timestamp) <= 10000", event, now=7323 + 10001)
    # the documentation's example: Monday 5 March 2018 18:51:53 UTC
    assert passes("weekday(1520275913) == 1 && hour(1520275913) == 18", event)


def test_time_functions_take_what_sensu_go_s_toint64_takes() -> None:
    # no argument: 0; anything but a number counts as 0 (1970-01-01 was a Thursday); fractions truncate
    assert passes("hour() === 0 && weekday() === 0 && weekday(undefined) === 4 && weekday('x') === 4", make_event())
    assert passes("hour(7323.9) === 2 && hour(-1) === 23 && weekday(-1) === 3", make_event())
    assert passes("seconds_since(100.7) === 900.5", make_event(), now=1000.5)


def test_the_event_is_synthesized_as_sensu_go_does() -> None:
    event = make_event(entity_labels={"region": "eu"}, check_annotations={"runbook": "x"})
    assert passes(
        [
            "event.check.name === 'check-cpu' && event.check.metadata.name === 'check-cpu'",
            "event.entity.name === 'web1' && event.entity.namespace === 'default'",
            "event.entity.labels.region === 'eu' && event.check.annotations.runbook === 'x'",
            # labels and annotations are objects even when empty
            "typeof event.check.labels === 'object' && Object.keys(event.check.labels).length === 0",
            "typeof event.annotations === 'object' && event.namespace === ''",
            # every field, empty ones too (Synthesize ignores omitempty)
            "event.check.state === '' && event.check.silenced.length === 0 && event.check.cron === ''",
            "event.entity.system.arch === '' && event.entity.user === ''",
            "event.metrics === null && event.has_metrics === false && event.is_flapping_start === false",
            "event.entity.labels.environment === undefined",
        ],
        event,
    )
    assert passes(
        "event.check === null && event.metrics.points[0].value === 12.5", make_event(check=False, metrics=True)
    )


def test_a_sensu_json_dict_is_accepted_as_well_as_an_event() -> None:
    event = make_event(status=2)
    data = event.to_dict()
    data["unknown_field"] = 1  # ignored, as Sensu Go's API ignores it
    assert passes("event.check.status === 2 && event.check.name === 'check-cpu'", data)
    assert synthesize(event)["check"]["name"] == "check-cpu"


def test_a_result_that_is_not_a_boolean_counts_by_javascript_truthiness() -> None:
    # otto's Value.ToBoolean, which Sensu Go's EvalPredicateWithVM returns
    event = make_event(status=2)
    assert passes("event.check.status", event)
    assert passes("'no'", event)
    assert passes("({})", event)
    assert not passes("event.check.output.length - event.check.output.length", event)
    assert not passes("''", event)
    assert not passes("null", event)
    assert not passes("undefined", event)
    # a program: its completion value counts
    assert passes("var limit = 1; event.check.status > limit", event)


def test_allow_filters_and_their_expressions_deny_filters_or_them() -> None:
    # sensu-go legacy_test.go: "inclusive filter expressions are AND'd", "exclusive ... OR'd"
    others = ["event.check.name != 'check-foo'", "event.check.name != 'check-bar'", "event.check.name != 'check-baz'"]
    assert passes(others, make_event(name="my-check"), "allow")
    assert not passes(others, make_event(name="check-bar"), "allow")
    names = ["event.check.name == 'check-foo'", "event.check.name == 'check-bar'", "event.check.name == 'check-baz'"]
    assert not passes(names, make_event(name="check-bar"), "deny")
    assert passes(names, make_event(name="check-qux"), "deny")
    some = ["event.check.output == 'unmatched'", "event.check.output == 'matched'"]
    assert not passes(some, make_event(output="matched"), "allow")
    assert not passes(some, make_event(output="matched"), "deny")


def test_a_failing_expression_is_skipped_and_reported() -> None:
    # legacy.go: "error evaluating javascript event filter", then continue
    event = make_event(status=2)
    broken = "event.check.labels.team.name == 'ops'"  # labels.team is undefined: TypeError
    allow = compile_filter([broken, "event.check.status == 2"], "spec.expressions", "allow").evaluate(event, NOW)
    assert allow.passed
    assert len(allow.errors) == 1
    error = allow.errors[0]
    assert isinstance(error, ScriptError)
    assert error.source == broken
    assert error.message.startswith("TypeError: cannot read property 'name' of undefined")
    # alone, it lets every event through, allow or deny
    assert compile_filter([broken], "spec.expressions", "allow").evaluate(event, NOW).passed
    assert compile_filter([broken], "spec.expressions", "deny").evaluate(event, NOW).passed
    assert not compile_filter([broken, "true"], "spec.expressions", "deny").evaluate(event, NOW).passed
    undefined_name = compile_filter(["nosuchthing > 1"], "spec.expressions").evaluate(event, NOW)
    assert undefined_name.errors[0].message.startswith("ReferenceError: 'nosuchthing' is not defined")


def test_evaluation_stops_at_the_first_deciding_expression() -> None:
    event = make_event(status=2)
    verdict = compile_filter(["false", "event.no.such.path"], "spec.expressions", "allow").evaluate(event, NOW)
    assert (verdict.passed, verdict.errors) == (False, [])
    verdict = compile_filter(["true", "event.no.such.path"], "spec.expressions", "deny").evaluate(event, NOW)
    assert (verdict.passed, verdict.errors) == (False, [])


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("event.check.status ==", "SyntaxError: unexpected token in expression: ''"),
        ("event.check.name == 'check-cpu", "SyntaxError: unexpected end of string"),
        ("return true", "SyntaxError: return not in a function"),
        # pasted into a wrapper, this would close it and run the rest: refused, and never run
        ("}); globalThis.ran = true; (function(){", "SyntaxError: unexpected token in expression: '}'"),
    ],
)
def test_a_syntax_error_is_refused_at_load_naming_the_expression(source: str, error: str) -> None:
    with pytest.raises(ValidationError) as caught:
        compile_filter(["event.check.status == 0", source], "spec.expressions")
    assert caught.value.path == "spec.expressions[1]"
    assert error in caught.value.message
    assert source in caught.value.message
    assert passes("typeof ran === 'undefined'", make_event())


def test_an_unknown_action_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"spec\.action: expected allow or deny, got 'drop'"):
        compile_filter(["true"], "spec.expressions", "drop")


PRUNING = [
    "event.check.status != 0 && event.entity.labels.environment === 'production'",
    "event.check.labels.hasOwnProperty('environment')",
    "Object.keys(event.entity.labels).length === 1",
    "event.check.history[event.check.history.length - 2].status !== 0",
    "event.entity.system.network.interfaces.length === 0",
    "event.is_incident && event.check.occurrences > 0",
    "event.entity.labels.environment.length > 3",
    "JSON.stringify(event.check.labels) === '{}'",
    "event.check.nosuch === undefined && event.nosuch === undefined",
    "event.metrics === null || event.metrics.points.length > 0",
    "fatigue_check(event)",
    "'event.check' && event.check.executed > 0",
]
PRUNING_EVENTS = [
    make_event(),
    make_event(status=2, occurrences=3, history=[0, 2, 2], entity_labels={"environment": "production"}),
    make_event(check_labels={"environment": "dev"}, entity_labels={"environment": "qa"}),
    make_event(check=False, metrics=True),
]


@pytest.mark.parametrize("expression", PRUNING)
def test_an_expression_given_only_the_paths_it_reads_answers_as_with_the_whole_event(expression: str) -> None:
    pruned = compile_filter([expression], "spec.expressions")
    whole = JsFilter("allow", tuple(_Expression(e.source, None) for e in pruned.expressions), pruned.limits)
    for event in PRUNING_EVENTS:
        a, b = pruned.evaluate(event, NOW), whole.evaluate(event, NOW)
        assert (a.passed, [str(e) for e in a.errors]) == (b.passed, [str(e) for e in b.errors]), event
        prepared = filter_input(event)
        prepared.synthesized  # noqa: B018 - pruning the synthesized event instead of the model
        c = pruned.evaluate(prepared, NOW)
        assert (c.passed, [str(e) for e in c.errors]) == (b.passed, [str(e) for e in b.errors])


def test_an_expression_that_may_reach_the_event_another_way_gets_all_of_it() -> None:
    from pipeline.core.js.synth import event_paths

    assert event_paths("event.check.status == 0") == (("check", "status"),)
    for source in [
        "fatigue_check(event)",
        "event['check'].status",
        "this.event.check",
        "eval('event')",
        "ev\\u0065nt.check",
    ]:
        assert event_paths(source) is None, source


def test_lint_reports_expressions_that_always_fail_or_can_never_be_true() -> None:
    from pipeline.core.js.lint import lint_filter, sample_events

    assert set(sample_events(NOW)) == {"check", "metrics", "check and metrics"}
    compiled = compile_filter(
        [
            "event.check.name == 'check-cpu'",  # false on the samples, and right: not reported
            "event.entity.labels.environment.toLowerCase() == 'prod'",  # a label may be missing: TypeError
            "event.check.status != 0",  # fails only on the metrics-only sample: not reported
            "1 > 2",
            "nosuch(event)",
            "new Date().getUTCHours() > 30",  # reads the clock: may be true another time, not reported
        ],
        "spec.expressions",
    )
    findings = [(f.index, f.problem) for f in lint_filter(compiled, NOW)]
    assert findings == [
        (1, "fails on every sample event: TypeError: cannot read property 'toLowerCase' of undefined"),
        (3, "reads nothing of the event and is false: never true"),
        (4, "fails on every sample event: ReferenceError: 'nosuch' is not defined"),
    ]

"""Sensu Go 6's javascript mutators: the cases of sensu-go's own
backend/pipeline/mutator/javascript_test.go, and the sandbox's limits (pipeline/core/js/mutators.py)."""

from __future__ import annotations

import json

import pytest

from pipeline.core.js import compile_mutator, parse_env
from pipeline.errors import ScriptError, ScriptTimeout, ValidationError
from tests.unit.js_events import make_event


def mutated(source: str, **kwargs: object) -> dict[str, object]:
    event = make_event(status=2)
    out = compile_mutator(source, "spec.eval", env_vars=["hockey=puck"], **kwargs).mutate(event)  # type: ignore[arg-type]
    result: dict[str, object] = json.loads(out)
    return result


def expected(**labels: str) -> dict[str, object]:
    event = make_event(status=2)
    assert event.check is not None
    event.check.metadata.labels.update(labels)
    result: dict[str, object] = json.loads(event.to_json())
    return result


def test_the_mutated_event_is_the_output_when_eval_returns_nothing() -> None:
    assert mutated('event.check.labels["hockey"] = hockey') == expected(hockey="puck")


def test_a_returned_string_is_the_output_as_it_is() -> None:
    assert mutated('event.check.labels["hockey"] = hockey; return JSON.stringify(event);') == expected(hockey="puck")
    out = compile_mutator("return event.check.name + ': ' + event.check.output", "spec.eval").mutate(make_event())
    assert out == b"check-cpu: CPU OK - 12%"
    assert compile_mutator("return 'caf\u00e9'", "spec.eval").mutate(make_event()) == "caf\u00e9".encode()


def test_null_is_as_nothing() -> None:
    assert mutated('event.check.labels["hockey"] = hockey; return null;') == expected(hockey="puck")


@pytest.mark.parametrize(
    ("result", "kind"), [("{}", "Object"), ("[1]", "Array"), ("42", "Number"), ("true", "Boolean")]
)
def test_any_other_result_is_an_error(result: str, kind: str) -> None:
    with pytest.raises(ScriptError) as caught:
        mutated(f'event.check.labels["hockey"] = hockey; return {result};')
    assert caught.value.message == f'bad mutator result: got "{kind}", want string or undefined'


def test_a_runaway_mutator_is_stopped_at_its_timeout() -> None:
    with pytest.raises(ScriptTimeout) as caught:
        compile_mutator("while (true) {}", "spec.eval", timeout=1).mutate(make_event())
    assert caught.value.message == "mutator timeout reached, execution halted"
    assert caught.value.limit == 1.0
    # a mutator without a timeout is still stopped, at the default limit
    with pytest.raises(ScriptTimeout):
        compile_mutator("for (;;) {}", "spec.eval").mutate(make_event())


def test_env_vars_are_globals_and_a_bare_name_takes_the_backend_s_value() -> None:
    mutator = compile_mutator(
        "return FOOBAR + '/' + HOME", "spec.eval", env_vars=["FOOBAR=BAZ", "HOME"], environ={"HOME": "/root"}
    )
    assert mutator.mutate(make_event()) == b"BAZ//root"
    assert parse_env(["A=1=2", "UNSET", "=x"], {}) == {"A": "1=2", "UNSET": "", "=x": ""}
    # gone after the run
    assert compile_mutator("return typeof FOOBAR", "spec.eval").mutate(make_event()) == b"undefined"


def test_the_event_can_be_changed_through_metadata_or_the_lifted_names() -> None:
    out = mutated(
        "event.check.metadata.labels.a = '1'; event.entity.labels.b = '2'; event.check.status = 0; delete event.check.output"
    )
    check, entity = out["check"], out["entity"]
    assert isinstance(check, dict)
    assert isinstance(entity, dict)
    assert check["metadata"]["labels"] == {"a": "1"}
    assert entity["metadata"]["labels"] == {"b": "2"}
    assert check["status"] == 0
    assert "output" not in check
    # the lifted names are not in the output, nor empty labels (Go's omitempty)
    assert "labels" not in check
    assert "name" not in entity
    assert "labels" not in out["metadata"]  # type: ignore[operator]


def test_a_mutator_accepts_an_event_its_json_or_its_dict() -> None:
    event = make_event()
    mutator = compile_mutator("return event.entity.name", "spec.eval")
    assert mutator.mutate(event) == mutator.mutate(event.to_json()) == mutator.mutate(event.to_dict()) == b"web1"


def test_a_syntax_error_is_refused_at_load() -> None:
    with pytest.raises(ValidationError) as caught:
        compile_mutator("event.check.labels[ = 1", "spec.eval")
    assert caught.value.path == "spec.eval"
    assert "SyntaxError" in caught.value.message
    # Sensu Go pastes eval into its wrapper, so closing the wrapper early is valid code: loading it
    # runs nothing, running it runs all of it (in the sandbox), as in Sensu Go
    escaping = compile_mutator("}()); globalThis.ran = 1; (function () {", "spec.eval")
    assert compile_mutator("return typeof ran", "spec.eval").mutate(make_event()) == b"undefined"
    escaping.mutate(make_event())
    assert compile_mutator("return typeof ran", "spec.eval").mutate(make_event()) == b"number"


def test_an_exception_in_the_script_is_an_error_naming_it() -> None:
    with pytest.raises(
        ScriptError, match=r"'event.nothing.here = 1': TypeError: cannot set property 'here' of undefined"
    ):
        compile_mutator("event.nothing.here = 1", "spec.eval").mutate(make_event())

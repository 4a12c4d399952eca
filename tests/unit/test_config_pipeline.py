"""The pipeline's resources in YAML: filters, mutators, handler kinds, pipelines, silences."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import load_directory, validate_directory
from pipeline.config.loader import load_path
from pipeline.core.filtering import fatigue_annotation_problems
from tests.support import write_config

PIPELINE = """
type: EventFilter
api_version: core/v2
metadata: {name: business-hours}
spec:
  action: allow
  expressions:
    - "hour(event.timestamp) >= 9 && hour(event.timestamp) < 17"
---
type: Mutator
api_version: core/v2
metadata: {name: short}
spec:
  type: template
  template: "{{ event.entity.metadata.name }}: {{ event.check.output }}"
---
type: Mutator
api_version: core/v2
metadata: {name: jq}
spec:
  command: jq -c .check
  timeout: 5
---
type: Handler
api_version: core/v2
metadata: {name: logstash}
spec:
  type: tcp
  socket: {host: 127.0.0.1, port: 5000}
  mutator: short
  filters: [is_incident, business-hours]
---
type: Handler
api_version: core/v2
metadata: {name: statsd}
spec:
  type: udp
  socket: {host: 127.0.0.1, port: 8125}
---
type: Handler
api_version: core/v2
metadata: {name: ops}
spec:
  type: set
  handlers: [logstash, statsd, nowhere]
---
type: Pipeline
api_version: core/v2
metadata: {name: incidents}
spec:
  workflows:
    - name: logstash
      filters: [{name: is_incident, type: EventFilter, api_version: core/v2}, {name: fatigue}]
      mutator: {name: jq, type: Mutator, api_version: core/v2}
      handler: {name: logstash, type: Handler, api_version: core/v2}
---
type: Silenced
api_version: core/v2
metadata: {}
spec:
  subscription: linux
  check: disk
  expire: 3600
  expire_on_resolve: true
  reason: disk replaced tomorrow
"""


def errors_of(tmp_path: Path, text: str) -> list[str]:
    write_config(tmp_path, text)
    return [str(e) for e in validate_directory(tmp_path)]


def test_every_pipeline_resource_loads(tmp_path: Path) -> None:
    resources = load_directory(write_config(tmp_path, PIPELINE))
    assert [f.metadata.name for f in resources.filters] == ["business-hours"]
    assert [(m.metadata.name, m.kind) for m in resources.mutators] == [("short", "template"), ("jq", "pipe")]
    assert [h.type for h in resources.handlers] == ["tcp", "udp", "set"]
    pipeline = resources.pipeline("incidents")
    assert pipeline is not None
    assert [f.name for f in pipeline.workflows[0].filters] == ["is_incident", "fatigue"]
    (silence,) = resources.silences
    assert silence.metadata.name == "linux:disk"  # named after what it silences, as in Sensu Go
    handlers, missing = resources.expand_handlers(["ops", "statsd"], "default")
    assert [h.metadata.name for h in handlers] == ["logstash", "statsd"]
    assert missing == ["nowhere"]


SET = """
---
type: Handler
api_version: core/v2
metadata: {{name: {name}}}
spec:
  type: set
  handlers: [{members}]
"""


def sets(*definitions: tuple[str, str]) -> str:
    return "".join(SET.format(name=name, members=members) for name, members in definitions)


def test_a_loop_of_handler_sets_is_an_error_with_its_path(tmp_path: Path) -> None:
    errors = errors_of(tmp_path, sets(("a", "b"), ("b", "c"), ("c", "a")))
    assert (
        f"{tmp_path}/resources.yml: line 8: document 1: Handler 'a': spec.handlers: handler sets loop: a -> b -> c -> a"
        in errors
    )


def test_sets_nest_at_most_three_levels(tmp_path: Path) -> None:
    assert errors_of(tmp_path, sets(("a", "b"), ("b", "c"), ("c", "x"))) == []
    errors = errors_of(tmp_path, sets(("a", "b"), ("b", "c"), ("c", "d"), ("d", "x")))
    assert any("spec.handlers: handler sets nest deeper than 3 levels: a -> b -> c -> d" in e for e in errors)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("type: Pipeline\napi_version: core/v2\nmetadata: {name: p}\nspec:\n  workflows: [{name: w}]",
         "Pipeline 'p': spec.workflows[0].handler: required"),
        ("type: Pipeline\napi_version: core/v2\nmetadata: {name: p}\nspec: {workflows: []}",
         "Pipeline 'p': spec.workflows: at least one workflow is required"),
        ("type: EventFilter\napi_version: core/v2\nmetadata: {name: f}\nspec: {action: maybe, expressions: [x]}",
         "EventFilter 'f': spec.action: expected allow or deny, got 'maybe'"),
        ("type: EventFilter\napi_version: core/v2\nmetadata: {name: is_incident}\nspec: {action: allow, expressions: [x]}",
         "EventFilter 'is_incident': spec.metadata.name: 'is_incident' is a built-in filter"),
        ("type: Mutator\napi_version: core/v2\nmetadata: {name: m}\nspec: {type: javascript, eval: 'return ('}",
         "Mutator 'm': spec.eval: invalid JavaScript: SyntaxError: unexpected token in expression: '}'"),
        ("type: Mutator\napi_version: core/v2\nmetadata: {name: m}\nspec: {type: javascript}",
         "Mutator 'm': spec.eval: required for a javascript mutator"),
        ("type: Mutator\napi_version: core/v2\nmetadata: {name: m}\nspec: {command: cat, eval: 'return 1'}",
         "Mutator 'm': spec.eval: only javascript mutators take it (type: javascript)"),
        ("type: Silenced\napi_version: core/v2\nmetadata: {}\nspec: {subscription: '*', check: '*'}",
         "'*:*' would silence everything"),
        ("type: Silenced\napi_version: core/v2\nmetadata: {name: wrong}\nspec: {check: disk}",
         "spec.metadata.name: a silence is named <subscription>:<check>: expected '*:disk'"),
        ("type: Mutator\napi_version: core/v2\nmetadata: {name: m}\nspec: {type: template, template: '{{ event.check'}",
         "Mutator 'm': spec.template: template syntax error on line 1"),
        ("type: EventFilter\napi_version: core/v2\nmetadata: {name: f}\nspec: {action: allow, expressions: ['event.x ==']}",
         "EventFilter 'f': spec.expressions[0]: invalid JavaScript 'event.x =='"),
        ("type: Handler\napi_version: core/v2\nmetadata: {name: h}\nspec: {type: udp, socket: {host: x}}",
         "Handler 'h': spec.socket: a udp handler needs socket: {host, port}"),
    ],
)  # fmt: skip
def test_pipeline_resource_errors_name_the_field(tmp_path: Path, document: str, message: str) -> None:
    errors = errors_of(tmp_path, document)
    assert len(errors) == 1, errors
    assert message in errors[0]


DANGLING = """\
type: Pipeline
api_version: core/v2
metadata: {name: p}
spec:
  workflows: [{name: w, handler: {name: ghost}}]
---
type: Handler
api_version: core/v2
metadata: {name: h}
spec:
  type: pipe
  command: x
  filters: [is_incident, ghost]
  mutator: ghost
---
type: Handler
api_version: core/v2
metadata: {name: team}
spec: {type: set, handlers: [h, nobody]}
---
type: CheckConfig
api_version: core/v2
metadata: {name: c}
spec:
  command: x
  interval: 10
  subscriptions: [w]
  handlers: [slack]
  check_hooks: [{critical: [ps]}]
  pipelines: [{name: nowhere, type: Pipeline, api_version: core/v2}]
"""


def test_names_that_point_at_nothing_are_warnings_with_their_line_not_errors(tmp_path: Path) -> None:
    write_config(tmp_path, DANGLING)
    loaded = load_path(tmp_path)
    at = f"{tmp_path}/resources.yml"
    assert loaded.errors == []
    assert [str(w) for w in loaded.warnings] == [
        f"{at}: line 28: document 4: CheckConfig 'c': spec.handlers[0]: no Handler 'slack'",
        f"{at}: line 29: document 4: CheckConfig 'c': spec.check_hooks[0].critical[0]: no HookConfig 'ps'",
        f"{at}: line 30: document 4: CheckConfig 'c': spec.pipelines[0]: no Pipeline 'nowhere'",
        f"{at}: line 13: document 2: Handler 'h': spec.filters[1]: no EventFilter 'ghost'",
        f"{at}: line 14: document 2: Handler 'h': spec.mutator: no Mutator 'ghost'",
        f"{at}: line 19: document 3: Handler 'team': spec.handlers[1]: no Handler 'nobody'",
        f"{at}: line 5: document 1: Pipeline 'p': spec.workflows[0].handler: no Handler 'ghost'",
    ]
    assert validate_directory(tmp_path) == []  # loads: the backend starts with them


FILTERS = """
type: EventFilter
api_version: core/v2
metadata: {name: checked}
spec:
  action: allow
  expressions:
    - "event.check.name == 'check-cpu'"
    - "event.chek.status == 2"
    - "1 == 2"
"""


def test_filter_expressions_are_tried_on_sample_events_and_what_can_never_work_is_a_warning(tmp_path: Path) -> None:
    """``pipeline validate`` runs each expression on a check result, a metrics-only event and one
    with both: one that fails on all of them (a typo: Sensu Go would skip it on every event, and
    an allow filter would let everything through) or that can never be true is said; one that is
    merely false for the samples is not."""
    write_config(tmp_path, FILTERS)
    loaded = load_path(tmp_path)
    at = f"{tmp_path}/resources.yml"
    assert loaded.errors == []
    assert [str(w) for w in loaded.warnings] == [
        f"{at}: line 9: document 1: EventFilter 'checked': spec.expressions[1]: 'event.chek.status == 2' fails on "
        "every sample event: TypeError: cannot read property 'status' of undefined",
        f"{at}: line 10: document 1: EventFilter 'checked': spec.expressions[2]: '1 == 2' reads nothing of the "
        "event and is false: never true",
    ]


FATIGUE_ANNOTATIONS = """\
type: CheckConfig
api_version: core/v2
metadata:
  name: disk
  annotations:
    fatigue_check/occurrences: "3"
    fatigue_check/interval: one hour
spec:
  command: check-disk
  interval: 60
  subscriptions: [linux]
---
type: Entity
api_version: core/v2
metadata:
  name: switch1
  annotations:
    fatigue_check/keepalive_occurrences: many
spec:
  entity_class: proxy
"""


def test_fatigue_annotations_that_are_not_whole_numbers_are_a_warning(tmp_path: Path) -> None:
    """Sensu's fatigue-check-filter reads them with parseInt and filters out every incident when
    one is no number: the files load (as in Sensu Go) and ``pipeline validate`` says which."""
    write_config(tmp_path, FATIGUE_ANNOTATIONS)
    loaded = load_path(tmp_path)
    at = f"{tmp_path}/resources.yml"
    assert loaded.errors == []
    assert [str(w) for w in loaded.warnings] == [
        f"{at}: line 7: document 1: CheckConfig 'disk': metadata.annotations.fatigue_check/interval: expected a "
        "whole number, got 'one hour': fatigue_check reads it with parseInt",
        f"{at}: line 18: document 2: Entity 'switch1': metadata.annotations.fatigue_check/keepalive_occurrences: "
        "expected a whole number, got 'many': fatigue_check reads it with parseInt",
    ]


UNDEFINED_NAMES = """\
type: EventFilter
api_version: core/v2
metadata:
  name: fatigue_check
spec:
  action: allow
  expressions:
  - fatigue_check(event)
  runtime_assets:
  - fatigue-check-filter
---
type: CheckConfig
api_version: core/v2
metadata:
  name: ping-github-api
spec:
  command: ping-github-api.sh $GITHUB_TOKEN
  interval: 60
  subscriptions: [system]
  secrets:
  - name: GITHUB_TOKEN
    secret: github-token-vault
"""


def test_a_filter_s_asset_and_a_secret_that_are_not_defined_are_warnings(tmp_path: Path) -> None:
    write_config(tmp_path, UNDEFINED_NAMES)
    loaded = load_path(tmp_path)
    assert loaded.errors == []
    at = f"{tmp_path}/resources.yml"
    assert [str(w) for w in loaded.warnings] == [
        f"{at}: line 22: document 2: CheckConfig 'ping-github-api': spec.secrets[0].secret: no Secret "
        "'github-token-vault' (nor an Env provider declared to read a variable of that name): the command fails "
        "until one exists",
        f"{at}: line 10: document 1: EventFilter 'fatigue_check': spec.runtime_assets[0]: no Asset "
        "'fatigue-check-filter'",
    ]
    # an Env provider makes the name a variable of the backend's environment: no warning
    write_config(
        tmp_path, UNDEFINED_NAMES + "---\ntype: Env\napi_version: secrets/v1\nmetadata: {name: env}\nspec: {}\n"
    )
    declared = load_path(tmp_path)
    assert declared.errors == []
    assert [w.message for w in declared.warnings] == ["spec.runtime_assets[0]: no Asset 'fatigue-check-filter'"]


def test_a_fatigue_annotation_in_other_digits_is_a_warning_too() -> None:
    """JavaScript's parseInt reads ASCII digits only: ``٣`` is NaN to the filter, as ``many`` is."""
    assert fatigue_annotation_problems({"fatigue_check/occurrences": "3"}) == []
    assert fatigue_annotation_problems({"fatigue_check/occurrences": "\u0663"}) == [
        ("fatigue_check/occurrences", "expected a whole number, got '\u0663': fatigue_check reads it with parseInt")
    ]


def test_a_base_60_number_is_text_as_in_sensu_go(tmp_path: Path) -> None:
    """YAML 1.1 reads ``1:30`` as 90, and PyYAML does; Sensu Go's reader (go-yaml) takes no base
    60, so ``interval: 1:30`` is a string there, refused: here too, naming the field and line.
    Other YAML 1.1 numbers read as go-yaml reads them (``1_000``, ``0x1F``)."""
    write_config(tmp_path, "type: CheckConfig\napi_version: core/v2\nmetadata:\n  name: disk\nspec:\n"
                           "  command: 'true'\n  interval: 1:30\n  subscriptions: [linux]\n")  # fmt: skip
    (error,) = load_path(tmp_path).errors
    assert "line 7" in str(error)
    assert "interval" in str(error)
    assert "'1:30'" in str(error)
    write_config(tmp_path, "type: CheckConfig\napi_version: core/v2\nmetadata:\n  name: disk\nspec:\n"
                           "  command: 'true'\n  interval: 1_000\n  timeout: 0x1F\n  subscriptions: [linux]\n")  # fmt: skip
    loaded = load_path(tmp_path)
    assert loaded.errors == []
    (check,) = loaded.resources.checks
    assert (check.interval, check.timeout) == (1000, 31)

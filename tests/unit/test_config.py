"""Resource YAML: Sensu Go's format, strict, and errors that read as a path."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import load_directory, validate_directory
from pipeline.errors import ConfigErrors
from tests.support import write_config

GOOD = """
type: CheckConfig
api_version: core/v2
metadata:
  name: check-cpu
  labels: {team: ops}
spec:
  command: check-cpu.sh -w 75 -c 90
  interval: 60
  timeout: 10
  publish: true
  subscriptions: [linux]
  handlers: [slack]
---
type: Handler
api_version: core/v2
metadata: {name: slack, namespace: prod}
spec:
  type: pipe
  command: slack-handler --channel '#monitoring'
  timeout: 10
"""


PROD = "type: Namespace\napi_version: core/v2\nspec: {name: prod}\n"


def errors_of(tmp_path: Path, text: str, name: str = "resources.yml") -> list[str]:
    write_config(tmp_path, text, name)
    return [str(e) for e in validate_directory(tmp_path)]


def test_good_resources_load_with_their_fields(tmp_path: Path) -> None:
    write_config(tmp_path, PROD, "namespaces.yml")
    resources = load_directory(write_config(tmp_path, GOOD))
    (check,) = resources.checks
    assert check.metadata.name == "check-cpu"
    assert check.metadata.namespace == "default"
    assert check.metadata.labels == {"team": "ops"}
    assert (check.command, check.interval, check.timeout, check.publish) == ("check-cpu.sh -w 75 -c 90", 60, 10, True)
    assert check.subscriptions == ["linux"]
    assert check.handlers == ["slack"]
    handler = resources.handler("slack", "prod")
    assert handler is not None
    assert handler.command == "slack-handler --channel '#monitoring'"
    assert resources.handler("slack") is None  # other namespace
    assert resources.checks_for(["linux", "entity:web1"], "default") == [check]
    assert resources.checks_for(["windows"], "default") == []


def test_a_scheduled_check_is_published_unless_it_says_otherwise(tmp_path: Path) -> None:
    write_config(tmp_path, CHECK.format(spec="  interval: 10\n  command: x"), "a.yml")
    write_config(tmp_path, CHECK.format(spec="  interval: 10\n  publish: false").replace("disk", "quiet"), "b.yml")
    checks = {c.metadata.name: c.publish for c in load_directory(tmp_path).checks}
    assert checks == {"disk": True, "quiet": False}


def test_yaml_and_yml_in_nested_directories_and_other_files_ignored(tmp_path: Path) -> None:
    write_config(tmp_path / "a" / "b", GOOD.split("---")[0], "check.yaml")
    write_config(tmp_path, GOOD.split("---")[1].replace("prod", "default"), "handler.yml")
    (tmp_path / "notes.txt").write_text("type: nonsense")
    resources = load_directory(tmp_path)
    assert [c.metadata.name for c in resources.checks] == ["check-cpu"]
    assert [h.metadata.name for h in resources.handlers] == ["slack"]


def test_empty_directory_is_an_empty_config(tmp_path: Path) -> None:
    resources = load_directory(tmp_path)
    assert resources.checks == []
    assert resources.handlers == []


def test_missing_directory(tmp_path: Path) -> None:
    assert [str(e) for e in validate_directory(tmp_path / "nope")] == [f"{tmp_path / 'nope'}: not a directory"]


CHECK = "type: CheckConfig\napi_version: core/v2\nmetadata: {{name: disk}}\nspec:\n{spec}\n"


@pytest.mark.parametrize(
    ("line", "spec", "message"),
    [
        (5, "  interval: ten", "spec.interval: expected integer, got string 'ten'"),
        (6, "  interval: 10\n  intervall: 10", "spec.intervall: unknown field"),
        (6, "  interval: 10\n  subscriptions: linux", "spec.subscriptions: expected list, got string 'linux'"),
        (5, "  interval: 0\n  publish: true", "spec.interval: must be at least 1 for a published check, got 0"),
        (6, "  interval: 10\n  cron: '* * * * *'", "spec.cron: must not be set together with interval"),
        (
            6,
            "  interval: 10\n  low_flap_threshold: 40\n  high_flap_threshold: 20",
            "spec.low_flap_threshold: must be lower than high_flap_threshold (40 >= 20)",
        ),
        (
            6,
            "  interval: 10\n  output_metric_format: json",
            "spec.output_metric_format: expected one of nagios_perfdata",
        ),
        (5, "  metadata: {name: x}", "spec.metadata: unknown field (metadata belongs at the top level)"),
    ],
)
def test_spec_errors_name_file_line_document_resource_and_field(
    tmp_path: Path, line: int, spec: str, message: str
) -> None:
    (error,) = errors_of(tmp_path, CHECK.format(spec=spec))
    assert error.startswith(f"{tmp_path / 'resources.yml'}: line {line}: document 1: CheckConfig 'disk': {message}")


@pytest.mark.parametrize(
    ("line", "document", "message"),
    [
        (1, "api_version: core/v2\nmetadata: {name: x}\nspec: {}", "type: expected one of CheckConfig, HookConfig, Handler, EventFilter, Mutator, Pipeline, Silenced, Namespace, Asset, Entity, Env, Secret, got nothing"),
        (1, "type: Check\napi_version: core/v2\nmetadata: {name: x}\nspec: {}", "got 'Check'"),
        (1, "type: Handler\nmetadata: {name: x}\nspec: {}", "api_version: expected 'core/v2', got nothing"),
        (2, "type: Handler\napi_version: core/v3\nmetadata: {name: x}\nspec: {}", "api_version: expected 'core/v2', got 'core/v3'"),
        (1, "type: Handler\napi_version: core/v2\nspec: {}", "metadata.name: name must not be empty"),
        (3, "type: Handler\napi_version: core/v2\nmetadata: {name: 'a b'}\nspec: {}", "metadata.name: name 'a b' may contain"),
        (5, "type: Handler\napi_version: core/v2\nmetadata: {name: x}\nspec: {}\nkind: y", "kind: unknown field"),
        (1, "- just\n- a list", "expected a mapping with type, api_version, metadata, spec, got a list"),
        (1, "type: Handler\napi_version: core/v2\nmetadata: {name: x}", "Handler 'x': spec: expected a mapping, got nothing"),
        (
            4,
            "type: Handler\napi_version: core/v2\nmetadata: {name: x}\nspec: {type: tcp}",
            "Handler 'x': spec.socket: a tcp handler needs socket: {host, port}",
        ),
        (4, "type: Handler\napi_version: core/v2\nmetadata: {name: x}\nspec: {type: pipe}", "spec.command: required"),
    ],
)  # fmt: skip
def test_envelope_errors(tmp_path: Path, line: int, document: str, message: str) -> None:
    (error,) = errors_of(tmp_path, document)
    assert error.startswith(f"{tmp_path / 'resources.yml'}: line {line}: document 1: ")
    assert message in error


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    text = "type: Handler\napi_version: core/v2\nmetadata:\n  name: x\n spec: oops\n"
    (error,) = errors_of(tmp_path, text)
    assert error.startswith(f"{tmp_path / 'resources.yml'}: line 5: invalid YAML:")


def test_documents_are_counted_from_one_including_empty_ones(tmp_path: Path) -> None:
    write_config(tmp_path, PROD, "namespaces.yml")
    bad = "type: Handler\napi_version: core/v2\nmetadata: {name: h}\nspec: {type: pipe, timeout: x, command: c}"
    (error,) = errors_of(tmp_path, GOOD + "\n---\n---\n" + bad)
    assert ": line 28: document 4: Handler 'h': spec.timeout: expected integer, got string 'x'" in error


def test_every_error_of_every_file_is_reported(tmp_path: Path) -> None:
    write_config(tmp_path, CHECK.format(spec="  interval: ten"), "a.yml")
    write_config(tmp_path, "type: Nope\n---\n" + CHECK.format(spec="  timeout: -1x"), "b.yml")
    with pytest.raises(ConfigErrors) as info:
        load_directory(tmp_path)
    messages = [str(e) for e in info.value.errors]
    assert len(messages) == 3
    assert messages[0].startswith(f"{tmp_path / 'a.yml'}: line 5: document 1")
    assert messages[1].startswith(f"{tmp_path / 'b.yml'}: line 1: document 1: type:")
    assert messages[2].startswith(f"{tmp_path / 'b.yml'}: line 7: document 2: CheckConfig 'disk': spec.timeout")
    assert str(info.value).splitlines() == messages


def test_duplicate_names_are_an_error_naming_both_places(tmp_path: Path) -> None:
    write_config(tmp_path, PROD, "namespaces.yml")
    write_config(tmp_path, GOOD, "a.yml")
    write_config(tmp_path, GOOD.split("---")[0], "b.yml")
    (error,) = [str(e) for e in validate_directory(tmp_path)]
    assert error == (
        f"{tmp_path / 'b.yml'}: line 5: document 1: CheckConfig 'check-cpu': defined twice: also at {tmp_path / 'a.yml'}: document 1"
    )


def test_shipped_default_config_is_valid() -> None:
    config = Path(__file__).resolve().parents[2] / "pipeline" / "defaults" / "config"
    resources = load_directory(config)
    assert {c.metadata.name for c in resources.checks} >= {"load", "disk", "memory"}
    assert resources.handler("event-file") is not None


def test_a_type_that_is_not_a_string_is_an_error_not_a_crash(tmp_path: Path) -> None:
    (error,) = errors_of(tmp_path, "type: [CheckConfig]\napi_version: core/v2\nmetadata: {name: x}\nspec: {}")
    assert error.startswith(f"{tmp_path / 'resources.yml'}: line 1: document 1: type: expected one of CheckConfig")
    assert error.endswith("got ['CheckConfig']")


def test_messages_name_files_as_the_user_gave_the_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(tmp_path / "config", CHECK.format(spec="  interval: ten"), "checks.yml")
    monkeypatch.chdir(tmp_path)
    (error,) = [str(e) for e in validate_directory(Path("config"))]
    assert (
        error
        == "config/checks.yml: line 5: document 1: CheckConfig 'disk': spec.interval: expected integer, got string 'ten'"
    )


def test_handler_fields_land(tmp_path: Path) -> None:
    text = GOOD.split("---")[1] + "  env_vars: [A=1]\n  filters: [is_incident]\n  socket: {host: h, port: 1}\n"
    write_config(tmp_path, PROD, "namespaces.yml")
    (handler,) = load_directory(write_config(tmp_path, text)).handlers
    assert (handler.type, handler.timeout, handler.env_vars, handler.filters) == ("pipe", 10, ["A=1"], ["is_incident"])
    assert handler.socket is not None
    assert (handler.socket.host, handler.socket.port) == ("h", 1)


def test_a_key_given_twice_is_an_error_naming_its_line(tmp_path: Path) -> None:
    text = "type: CheckConfig\napi_version: core/v2\nmetadata: {name: disk}\nspec:\n  interval: 10\n  command: a\n  command: b\n"
    (error,) = errors_of(tmp_path, text)
    assert (
        error
        == f"{tmp_path / 'resources.yml'}: line 7: invalid YAML: while constructing a mapping, found duplicate key 'command'"
    )


def test_a_bad_cron_is_a_config_error(tmp_path: Path) -> None:
    (error,) = errors_of(tmp_path, CHECK.format(spec="  cron: '61 * * * *'"))
    assert error.endswith("CheckConfig 'disk': spec.cron: invalid cron expression '61 * * * *'")


def test_a_plugin_handler_needs_its_plugin(tmp_path: Path) -> None:
    (error,) = errors_of(tmp_path, "type: Handler\napi_version: core/v2\nmetadata: {name: h}\nspec: {type: plugin}\n")
    assert error.endswith(
        "Handler 'h': spec.plugin: required for a plugin handler (module:attr or an entry point name)"
    )
    resources = load_directory(write_config(tmp_path, "type: Handler\napi_version: core/v2\nmetadata: {name: h}\n"
                                            "spec: {type: plugin, plugin: graphite, options: {port: 2004}}\n"))  # fmt: skip
    handler = resources.handler("h")
    assert handler is not None
    assert (handler.plugin, handler.options) == ("graphite", {"port": 2004})


def test_a_resource_lives_in_a_declared_namespace_wherever_the_declaration_is(tmp_path: Path) -> None:
    handler = GOOD.split("---")[1]
    (error,) = errors_of(tmp_path, handler)
    assert error.endswith(
        "document 1: Handler 'slack': metadata.namespace: no Namespace 'prod': declare it (type: Namespace, spec: {name: prod})"
    )
    write_config(tmp_path, PROD, "z-namespaces.yml")  # read after the handler's file: order does not matter
    assert validate_directory(tmp_path) == []

"""Token substitution with Sensu Go's syntax, evaluated against the agent's entity."""

from __future__ import annotations

import pytest

from pipeline.core.tokens import TokenError, entity_scope, substitute, substitute_all

ENTITY = {
    "entity_class": "agent",
    "metadata": {"name": "web1", "namespace": "default", "labels": {"disk_warning": "90", "empty": ""},
                 "annotations": {"owner": "ops"}},
    "system": {"hostname": "web1.example", "os": "linux"},
}  # fmt: skip
SCOPE = entity_scope(ENTITY)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("check_disk -w {{ .labels.disk_warning }}", "check_disk -w 90"),
        ('check_disk -w {{ .labels.disk_warning | default "80" }}', "check_disk -w 90"),
        ('check_disk -c {{ .labels.disk_critical | default "95" }}', "check_disk -c 95"),
        ("check_disk -c {{.labels.disk_critical|default 95}}", "check_disk -c 95"),
        ('{{ .labels.empty | default "x" }}', "x"),
        ("[{{ .labels.empty }}]", "[]"),
        ("{{ .name }}@{{ .namespace }} {{ .entity_class }} {{ .system.hostname }}", "web1@default agent web1.example"),
        ("{{ .annotations.owner }}", "ops"),
        ("no tokens at all", "no tokens at all"),
        ('{{ .labels.x | default "a \\"quoted\\" word" }}', 'a "quoted" word'),
    ],
)
def test_substitution(text: str, expected: str) -> None:
    assert substitute(text, SCOPE) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{{ .labels.missing }}", "unmatched token '{{ .labels.missing }}'"),
        ("{{ .system.hostname.deeper }}", "unmatched token"),
        ('{{ exec "rm -rf /" }}', "unsupported token"),
        ("{{ .name | upper }}", "unsupported token"),
    ],
)
def test_errors_name_the_token(text: str, message: str) -> None:
    with pytest.raises(TokenError, match=message):
        substitute(text, SCOPE)


def test_every_string_of_a_config_with_the_field_in_errors() -> None:
    config = {"command": "c {{ .name }}", "env_vars": ["HOST={{ .system.hostname }}"], "interval": 10}
    assert substitute_all(config, SCOPE) == {"command": "c web1", "env_vars": ["HOST=web1.example"], "interval": 10}
    with pytest.raises(TokenError, match=r"output_metric_tags\[0\]\.value: unmatched token"):
        substitute_all({"output_metric_tags": [{"name": "a", "value": "{{ .labels.nope }}"}]}, SCOPE)

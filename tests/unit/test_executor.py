"""One check run becomes one event with Sensu's result fields."""

from __future__ import annotations

import json

from pipeline.agent.executor import OUTPUT_METRIC_ERRORS, CheckExecutor
from pipeline.core.limits import FIT_ANNOTATION
from pipeline.model import CheckConfig, Entity, MetricTag, ObjectMeta
from pipeline.model.check import HookConfig, MetricThreshold, MetricThresholdRule
from pipeline.process import TIMED_OUT_OUTPUT
from pipeline.wire.limits import MAX_EVENT_BYTES


def entity() -> Entity:
    return Entity(
        entity_class="agent",
        subscriptions=["linux", "entity:web1"],
        metadata=ObjectMeta(name="web1", namespace="default"),
    )


def check(command: str, **fields: object) -> CheckConfig:
    return CheckConfig(
        metadata=ObjectMeta(name="probe", namespace="default"),
        command=command,
        interval=10,
        publish=True,
        subscriptions=["linux"],
        handlers=["h"],
        **fields,  # type: ignore[arg-type]
    )


async def test_result_fields_and_sequence() -> None:
    executor = CheckExecutor(entity(), {"PATH": "/usr/bin:/bin"}, wall_clock=lambda: 1_700_000_000.5)
    first = await executor.execute(check("echo 'WARN - 85% | used=85%'; exit 1"), issued=1_699_999_999)
    second = await executor.execute(check("true"), issued=1_700_000_000)
    assert first.check is not None
    assert first.check.status == 1
    assert first.check.output == "WARN - 85% | used=85%\n"
    assert first.check.executed == 1_700_000_000
    assert first.check.issued == 1_699_999_999
    assert first.check.duration > 0
    assert first.check.handlers == ["h"]
    assert first.check.processed_by == "web1"
    assert first.timestamp == 1_700_000_000
    assert first.entity == entity()
    assert (first.sequence, second.sequence) == (1, 2)
    assert first.id != second.id
    first.validate()


async def test_timeout_gives_status_2_and_sensu_output() -> None:
    executor = CheckExecutor(entity(), {"PATH": "/usr/bin:/bin"})
    event = await executor.execute(check("sleep 10", timeout=1), issued=0)
    assert event.check is not None
    assert event.check.status == 2
    assert event.check.output == TIMED_OUT_OUTPUT


async def test_env_vars_and_stdin() -> None:
    executor = CheckExecutor(entity(), {"PATH": "/usr/bin:/bin"})
    event = await executor.execute(check('echo "$COLOR"; cat', env_vars=["COLOR=blue"], stdin=True), issued=0)
    assert event.check is not None
    first_line, payload = event.check.output.split("\n", 1)
    assert first_line == "blue"
    sent = json.loads(payload)
    assert sent["entity"]["metadata"]["name"] == "web1"
    assert sent["check"]["metadata"]["name"] == "probe"
    assert sent["check"]["output"] == ""


def labelled_entity() -> Entity:
    labelled = entity()
    labelled.metadata.labels = {"disk_warning": "90"}
    return labelled


async def test_tokens_are_substituted_and_the_event_reports_the_command_as_written() -> None:
    executor = CheckExecutor(labelled_entity(), {"PATH": "/usr/bin:/bin"})
    command = 'echo "w={{ .labels.disk_warning }} c={{ .labels.disk_critical | default "95" }} on {{ .name }}"'
    event = await executor.execute(check(command), issued=0)
    assert event.check is not None
    assert event.check.output == "w=90 c=95 on web1\n"
    assert event.check.command == command


async def test_an_unmatched_token_does_not_run_the_command() -> None:
    executor = CheckExecutor(entity(), {"PATH": "/usr/bin:/bin"})
    event = await executor.execute(check("touch /tmp/should-not-exist-{{ .labels.nope }}"), issued=0)
    assert event.check is not None
    assert event.check.status == 3
    assert event.check.output == (
        "error while substituting check tokens: command: unmatched token '{{ .labels.nope }}'"
    )


async def test_output_inside_braces_is_never_rendered() -> None:
    executor = CheckExecutor(entity(), {"PATH": "/usr/bin:/bin"})
    event = await executor.execute(check("echo '{{ .name }}'"), issued=0)
    assert event.check is not None
    assert event.check.output == "web1\n"  # the command's token is substituted ...
    raw = await executor.execute(check("printf '%s%s .name }}' '{' '{'"), issued=0)
    assert raw.check is not None
    assert raw.check.output == "{{ .name }}"  # ... but text the command prints stays as printed


async def test_metrics_thresholds_and_their_annotations() -> None:
    executor = CheckExecutor(labelled_entity(), {"PATH": "/usr/bin:/bin"})
    config = check(
        "echo 'DISK OK | used=95%;80;90 free=5%'",
        output_metric_format="nagios_perfdata",
        output_metric_handlers=["influx"],
        output_metric_tags=[MetricTag("host", "{{ .name }}")],
        output_metric_thresholds=[
            MetricThreshold(name="used", thresholds=[MetricThresholdRule(max="{{ .labels.disk_warning }}", status=1)])
        ],
    )
    event = await executor.execute(config, issued=0)
    assert event.check is not None
    assert event.metrics is not None
    assert event.check.status == 1
    assert event.metrics.handlers == ["influx"]
    assert [(p.name, p.value, p.tags) for p in event.metrics.points] == [
        ("used", 95.0, [MetricTag("host", "web1")]),
        ("free", 5.0, [MetricTag("host", "web1")]),
    ]
    assert event.metadata.annotations["sensu.io/notifications/warning"] == (
        "The value of used exceeded the configured threshold (max: 90, actual: 95)."
    )


async def test_unparsable_metric_lines_are_reported_in_the_event_and_counted() -> None:
    seen: list[list[str]] = []
    executor = CheckExecutor(entity(), {"PATH": "/usr/bin:/bin"}, on_extraction_errors=lambda c, e: seen.append(e))
    event = await executor.execute(
        check("echo 'a.b 1 2'; echo 'garbage'", output_metric_format="graphite_plaintext"), 0
    )
    assert event.check is not None
    assert event.check.status == 0
    assert event.metrics is not None
    assert [p.name for p in event.metrics.points] == ["a.b"]
    assert event.metadata.annotations[OUTPUT_METRIC_ERRORS] == (
        "line 2: 'garbage': expected 'path value timestamp', got 1 fields"
    )
    assert seen == [["line 2: 'garbage': expected 'path value timestamp', got 1 fields"]]


async def test_hooks_run_for_matching_statuses_and_report_like_sensu() -> None:
    executor = CheckExecutor(labelled_entity(), {"PATH": "/usr/bin:/bin"}, wall_clock=lambda: 1_700_000_000)
    executor.hooks = {
        "who": HookConfig(metadata=ObjectMeta(name="who", namespace="default"), command="echo checked on {{ .name }}"),
        "input": HookConfig(metadata=ObjectMeta(name="input", namespace="default"), command="cat", stdin=True),
        "never": HookConfig(metadata=ObjectMeta(name="never", namespace="default"), command="echo no"),
    }
    config = check(
        "echo broken; exit 2",
        check_hooks=[{"ok": ["never"]}, {"critical": ["who", "input", "missing"]}, {"non-zero": ["who"]}],
    )
    event = await executor.execute(config, issued=0)
    assert event.check is not None
    hooks = {hook.metadata.name: hook for hook in event.check.hooks}
    assert [hook.metadata.name for hook in event.check.hooks] == ["who", "input", "missing"]
    assert hooks["who"].output == "checked on web1\n"
    assert hooks["who"].command == "echo checked on {{ .name }}"  # as written
    assert (hooks["who"].status, hooks["who"].executed, hooks["who"].issued, hooks["who"].timeout) == (
        0,
        1_700_000_000,
        0,
        60,
    )
    seen = json.loads(hooks["input"].output)
    assert seen["check"]["output"] == "broken\n"
    assert "hooks" not in seen["check"]
    assert hooks["missing"].status == 2
    assert hooks["missing"].output == "hook missing: no HookConfig of that name\n"
    as_json = json.loads(event.to_json())["check"]["hooks"][0]
    assert set(as_json) == {"metadata", "command", "timeout", "stdin", "runtime_assets", "duration", "executed",
                            "issued", "output", "status"}  # fmt: skip


async def test_a_hook_timeout_is_status_2() -> None:
    executor = CheckExecutor(entity(), {"PATH": "/usr/bin:/bin"})
    executor.hooks = {"slow": HookConfig(metadata=ObjectMeta(name="slow"), command="sleep 10", timeout=1)}
    event = await executor.execute(check("exit 1", check_hooks=[{"warning": ["slow"]}]), issued=0)
    assert event.check is not None
    (hook,) = event.check.hooks
    assert (hook.status, hook.output) == (2, "Execution timed out\n")


async def test_discard_output_after_extraction_and_max_output_size() -> None:
    executor = CheckExecutor(entity(), {"PATH": "/usr/bin:/bin"})
    discarded = await executor.execute(
        check("echo 'OK | x=1'", discard_output=True, output_metric_format="nagios_perfdata"), issued=0
    )
    assert discarded.check is not None
    assert discarded.check.output == ""
    assert discarded.metrics is not None
    assert [p.name for p in discarded.metrics.points] == ["x"]
    cut = await executor.execute(check("printf 'abcdefghij'", max_output_size=4), issued=0)
    assert cut.check is not None
    assert cut.check.output == "abcd\n[output truncated: 6 bytes over max_output_size 4]\n"
    assert cut.metadata.labels == {"sensu.io/output_truncated_bytes": "6"}


async def test_a_result_too_large_for_one_event_is_cut_to_fit_after_max_output_size() -> None:
    fitted = []
    executor = CheckExecutor(entity(), {"PATH": "/usr/bin:/bin"}, on_fit=lambda event, fit: fitted.append(fit))
    executor.hooks = {
        "dump": HookConfig(
            metadata=ObjectMeta(name="dump", namespace="default"), command="head -c 1000000 /dev/zero | tr '\\0' h"
        )
    }
    # a megabyte of output and a megabyte from the hook: each within the output cap, together over the event size
    config = check("head -c 1000000 /dev/zero | tr '\\0' c; exit 2", check_hooks=[{"critical": ["dump"]}])
    event = await executor.execute(config, issued=0)
    assert event.check is not None
    assert len(event.to_msgpack()) <= MAX_EVENT_BYTES
    assert event.check.status == 2
    assert "bytes cut to keep the event within 1048576 bytes" in event.check.output
    assert event.check.output.startswith("c" * 1000) or event.check.hooks[0].output.startswith("h" * 1000)
    (fit,) = fitted
    assert fit.cut_bytes > 900_000
    assert FIT_ANNOTATION in event.metadata.annotations
    small = await executor.execute(check("head -c 1000 /dev/zero | tr '\\0' c", max_output_size=10), issued=0)
    assert small.check is not None
    assert small.check.output.startswith("cccccccccc\n[output truncated: 990 bytes over max_output_size 10]")
    assert len(fitted) == 1  # Sensu's max_output_size alone, when the event fits

"""One check run becomes one event with Sensu's result fields."""

from __future__ import annotations

import json

from pipeline.agent.executor import CheckExecutor
from pipeline.model import CheckConfig, Entity, ObjectMeta
from pipeline.process import TIMED_OUT_OUTPUT


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

"""In-process handler plugins: found, loaded and validated at startup; failures isolated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

from pipeline.backend.handlers import HandlerRunner
from pipeline.config import Resources
from pipeline.errors import HandlerError
from pipeline.metrics import BackendMetrics
from pipeline.model import Check, Entity, Event, MetricPoint, Metrics, MetricTag, ObjectMeta
from pipeline.model.resources import Handler
from pipeline.plugins import load
from pipeline.plugins.graphite import GraphiteHandler
from tests.support import pipeline_command, write_config


class Recording:
    """A plugin that remembers what it was given."""

    seen: list[Event] = []

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options

    async def handle(self, event: Event) -> None:
        Recording.seen.append(event)


class Failing:
    def __init__(self, options: dict[str, Any]) -> None:
        pass

    async def handle(self, event: Event) -> None:
        raise RuntimeError("the pager service said no")


class Slow:
    def __init__(self, options: dict[str, Any]) -> None:
        pass

    async def handle(self, event: Event) -> None:
        await trio.sleep(3600)


class NotAsync:
    def __init__(self, options: dict[str, Any]) -> None:
        pass

    def handle(self, event: Event) -> None:
        pass


def plugin(name: str, reference: str, timeout: int = 0, **options: Any) -> Handler:
    return Handler(metadata=ObjectMeta(name=name, namespace="default"), type="plugin", plugin=reference,
                   options=options, timeout=timeout, max_attempts=1)  # fmt: skip


@pytest.mark.parametrize(
    ("reference", "options", "message"),
    [
        ("no_such_module:x", {}, "plugin 'no_such_module:x': cannot import 'no_such_module'"),
        ("tests.unit.test_handler_plugins:Missing", {}, "has no 'Missing'"),
        ("tests.unit.test_handler_plugins:NotAsync", {}, "NotAsync has no 'async def handle(self, event)'"),
        ("no-such-entry-point", {}, "no entry point of that name in group 'pipeline.handlers'"),
        ("graphite", {"hots": "x"}, "plugin 'graphite': unknown options ['hots']"),
    ],
)
def test_a_plugin_that_cannot_be_loaded_is_named(reference: str, options: dict[str, Any], message: str) -> None:
    with pytest.raises(HandlerError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        load(reference, options)


def test_the_shipped_graphite_plugin_is_an_entry_point() -> None:
    assert isinstance(load("graphite", {"port": 2004}), GraphiteHandler)


def event_with_points() -> Event:
    return Event(
        entity=Entity(metadata=ObjectMeta(name="web1", namespace="default")),
        check=Check(metadata=ObjectMeta(name="disk", namespace="default"),
                    handlers=["record", "fail", "slow", "graphite"]),
        metrics=Metrics(points=[MetricPoint(name="disk.used", value=81.5, timestamp=1700000000,
                                            tags=[MetricTag("mount", "/")])]),
        id="0b7c1e1a-7f0e-4b8e-9b52-8f1a3c2d4e5f",
    )  # fmt: skip


async def test_plugins_run_in_process_and_their_failures_are_isolated() -> None:
    received: list[bytes] = []

    async def carbon(stream: trio.SocketStream) -> None:
        received.append(b"".join([chunk async for chunk in stream]))

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(trio.serve_tcp, carbon, 0)
        port = listeners[0].socket.getsockname()[1]
        resources = Resources(handlers=[
            plugin("record", "tests.unit.test_handler_plugins:Recording"),
            plugin("fail", "tests.unit.test_handler_plugins:Failing"),
            plugin("slow", "tests.unit.test_handler_plugins:Slow", timeout=1),
            plugin("graphite", "graphite", host="127.0.0.1", port=port),
        ])  # fmt: skip
        metrics = BackendMetrics.create()
        runner = HandlerRunner(lambda: resources, metrics, {})
        event = event_with_points()
        Recording.seen = []
        await runner.handle(event)
        nursery.cancel_scope.cancel()
    assert Recording.seen == [event]
    assert received == [b"disk.used;mount=/ 81.5 1700000000\n"]

    def failures(handler: str, reason: str) -> float | None:
        return metrics.registry.get_sample_value(
            "pipeline_handler_failures_total", {"handler": handler, "reason": reason}
        )

    assert failures("fail", "exception") == 1
    assert failures("slow", "timeout") == 1
    assert failures("graphite", "exception") is None


async def test_the_backend_refuses_to_start_on_a_plugin_it_cannot_load(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config", """
        type: Handler
        api_version: core/v2
        metadata: {name: pager}
        spec:
          type: plugin
          plugin: no_such_module:Pager
        """)  # fmt: skip
    result = await trio.run_process(
        pipeline_command("backend", "--config", str(config), "--data", str(tmp_path / "data"),
                         "--api-addr", "127.0.0.1:0", "--transport-addr", "127.0.0.1:0"),
        capture_stderr=True, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert (
        "pipeline: cannot run: plugin 'no_such_module:Pager': cannot import 'no_such_module'" in result.stderr.decode()
    )


class Counted:
    """A plugin that counts how often it is built."""

    built = 0

    def __init__(self, options: dict[str, Any]) -> None:
        Counted.built += 1

    async def handle(self, event: Event) -> None:
        pass


def test_a_plugin_is_built_once_when_a_change_is_checked_then_applied() -> None:
    before = Resources(handlers=[plugin("record", "tests.unit.test_handler_plugins:Recording")])
    after = Resources(handlers=[*before.handlers, plugin("counted", "tests.unit.test_handler_plugins:Counted")])
    runner = HandlerRunner(lambda: before, BackendMetrics.create(), {})
    Counted.built = 0
    runner.prepare(after)  # the API checks the change ...
    runner.refresh(after)  # ... then applies it
    assert Counted.built == 1
    runner.refresh(Resources(handlers=[plugin("counted", "tests.unit.test_handler_plugins:Counted", port=1)]))
    assert Counted.built == 2  # new options: a new instance


async def test_the_workflows_of_an_event_follow_a_change_of_the_resources() -> None:
    """The runner remembers which workflows a set of handler names gives, per set of resources:
    a change (a new Resources) is followed from the next event on."""
    with_record = Resources(handlers=[plugin("record", "tests.unit.test_handler_plugins:Recording")])
    without = Resources()
    current = [with_record]
    metrics = BackendMetrics.create()
    runner = HandlerRunner(lambda: current[0], metrics, {})
    runner.refresh(with_record)
    event = Event(entity=Entity(metadata=ObjectMeta(name="web1", namespace="default")),
                  check=Check(metadata=ObjectMeta(name="disk", namespace="default"), handlers=["record"]))  # fmt: skip
    Recording.seen = []
    await runner.handle(event)
    await runner.handle(event)
    assert Recording.seen == [event, event]
    current[0] = without
    runner.refresh(without)
    await runner.handle(event)
    assert Recording.seen == [event, event]
    missing = metrics.registry.get_sample_value(
        "pipeline_handler_failures_total", {"handler": "record", "reason": "missing"}
    )
    assert missing == 1
    current[0] = with_record
    runner.refresh(with_record)
    await runner.handle(event)
    assert Recording.seen == [event, event, event]

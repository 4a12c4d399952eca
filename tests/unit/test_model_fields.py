"""Say no or do it: every field of every resource model is either refused at load when set,
shown acting by a behavioural probe, or kept unchanged on purpose (issue 14's rule).

The walk enumerates ``dataclasses.fields`` of each root model, recursively through nested
dataclasses (a nested class that is itself a root, such as an event's entity, is walked as that
root). Every path must be in exactly one of:

- ``REFUSED``: a document that sets it to the given non-default value is refused at load
  (``resource_from_document``, the one function files and the resources API load with, or the
  model's ``validate`` for entities and events), the ValidationError naming the field's path;
- ``USED``: a probe that builds the resource with a non-default value and shows, through the
  pure core or the service that acts on it, a difference from the default;
- ``KEPT``: stored and returned unchanged, which is all Sensu Go's documented meaning asks.

A field added to a model without a classification fails ``test_every_field_is_classified``,
named. The probes that need a running service name the test that shows it (``proven_by``),
which must exist and mention the field.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import inspect
import types
import typing
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from pipeline.agent.executor import CheckExecutor
from pipeline.backend.handlers import HandlerRunner
from pipeline.config import Resources
from pipeline.config.loader import resource_from_document
from pipeline.core.filtering import BuiltinFilters, compile_event_filter
from pipeline.core.keepalive import deregistration_events, failing_keepalive, passing_keepalive, ttl_expired
from pipeline.core.redact import redacted_entity
from pipeline.core.schedule import schedule_for
from pipeline.core.selectors import matches_document, parse_label_selector
from pipeline.core.silencing import ended_by_resolution, silencing_names, with_times
from pipeline.core.stages import StageRef
from pipeline.core.state import apply_result
from pipeline.core.tokens import entity_scope, substitute
from pipeline.core.workflows import workflows_for
from pipeline.errors import ValidationError
from pipeline.metrics import BackendMetrics
from pipeline.model import Check, CheckConfig, CheckHistory, Entity, Event, MetricTag, ObjectMeta
from pipeline.model.check import HookConfig
from pipeline.model.codec import decode, encode
from pipeline.model.entity import Deregistration
from pipeline.model.forms import EventForms
from pipeline.model.meta import ResourceReference
from pipeline.model.pipeline import EventFilter, Mutator, Pipeline, PipelineWorkflow, Silenced
from pipeline.model.resources import Handler, Namespace

ROOTS: dict[str, type[Any]] = {
    "CheckConfig": CheckConfig,
    "HookConfig": HookConfig,
    "Handler": Handler,
    "EventFilter": EventFilter,
    "Mutator": Mutator,
    "Pipeline": Pipeline,
    "Silenced": Silenced,
    "Namespace": Namespace,
    "Entity": Entity,
    "Check": Check,  # an event's check, as submitted
    "Event": Event,
}
_ROOT_OF = {cls: name for name, cls in ROOTS.items()}


def _dataclass_in(tp: Any) -> type[Any] | None:
    """The dataclass a field holds (itself, in a list, or optional), if any."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is list:
        return _dataclass_in(args[0])
    if origin in (typing.Union, types.UnionType):
        (inner,) = [a for a in args if a is not type(None)]
        return _dataclass_in(inner)
    return tp if isinstance(tp, type) and dataclasses.is_dataclass(tp) else None


def walk(cls: type[Any], prefix: str) -> list[str]:
    """Every field path under ``cls``: a field holding a dataclass is walked into, unless that
    class is a root of its own (walked there) or the field is classified as a whole."""
    paths = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        path = f"{prefix}.{f.name}"
        inner = _dataclass_in(hints[f.name])
        if inner is None or path in CLASSIFIED:
            paths.append(path)
        elif inner in _ROOT_OF and inner is not cls:
            continue
        else:
            paths.extend(walk(inner, path))
    return paths


def all_paths() -> list[str]:
    return [path for name, cls in ROOTS.items() for path in walk(cls, name)]


# -- REFUSED: path -> a non-default value -----------------------------------------------------------

BASE_SPECS: dict[str, dict[str, Any]] = {
    "CheckConfig": {"command": "true", "interval": 10, "subscriptions": ["web"]},
    "HookConfig": {"command": "true"},
    "Handler": {"type": "pipe", "command": "cat"},
    "EventFilter": {"action": "allow", "expressions": ["true"]},
    "Mutator": {"command": "cat"},
    "Pipeline": {"workflows": [{"name": "w", "handler": {"name": "h", "type": "Handler", "api_version": "core/v2"}}]},
    "Silenced": {"subscription": "web"},
}

REFUSED: dict[str, Any] = {
    # Issue 15 implements these; until then a set value is refused, an empty one loads.
    "CheckConfig.subdue": {"days": {"all": [{"begin": "5:00 PM", "end": "8:00 AM"}]}},
    # A reference to a kind pipeline has none of (empty and the right kind load).
    "CheckConfig.pipelines.type": "SumoLogicMetricsHandler",
    "CheckConfig.pipelines.api_version": "core/v3",
    "Pipeline.workflows.filters.type": "Handler",
    "Pipeline.workflows.filters.api_version": "core/v3",
    "Pipeline.workflows.mutator.type": "Handler",
    "Pipeline.workflows.mutator.api_version": "core/v3",
    "Pipeline.workflows.handler.type": "SumoLogicMetricsHandler",
    "Pipeline.workflows.handler.api_version": "core/v3",
    "Check.fallback_pipeline": {"name": "fallback"},
    "Event.fallback_pipeline": {"name": "fallback"},
    "Event.pipelines.type": "Handler",
    "Event.pipelines.api_version": "core/v3",
    "Event.metadata.name": "named",  # events are not named (Sensu Go's rule)
}


def _set(document: dict[str, Any], cls: type[Any], parts: list[str], value: Any) -> str:
    """Set ``value`` at ``parts`` inside ``document`` (a ``cls``; into the first item of a list,
    made if missing) and return the path the loader names (``workflows[0].handler.type``)."""
    key, rest = parts[0], parts[1:]
    if not rest:
        document[key] = value
        return key
    tp = typing.get_type_hints(cls)[key]
    inner = _dataclass_in(tp)
    assert inner is not None, key
    if typing.get_origin(tp) is list:
        items = document.setdefault(key, [])
        if not items:
            items.append({"name": "x"})
        return f"{key}[0].{_set(items[0], inner, rest, value)}"
    return f"{key}.{_set(document.setdefault(key, {}), inner, rest, value)}"


def load_with(path: str, value: Any) -> tuple[Callable[[], object], str]:
    """A loader of a document setting ``path`` to ``value``, and the path its error must name."""
    root, *parts = path.split(".")
    if root in BASE_SPECS:
        spec = copy.deepcopy(BASE_SPECS[root])
        named = _set(spec, ROOTS[root], parts, value)
        document = {"type": root, "api_version": "core/v2", "metadata": {"name": "probe"}, "spec": spec}
        return lambda: resource_from_document(document), f"spec.{named}"
    body: dict[str, Any] = {"entity": {"metadata": {"name": "web1"}}, "check": {"metadata": {"name": "disk"}}}
    if root == "Check":
        parts = ["check", *parts]
    named = _set(body, Event, parts, value)

    def load() -> object:
        event = decode(Event, body)
        event.validate()
        return event

    return load, named


@pytest.mark.parametrize("path", sorted(REFUSED))
def test_a_refused_field_set_is_refused_at_load_naming_it(path: str) -> None:
    load, named = load_with(path, REFUSED[path])
    with pytest.raises(ValidationError) as refused:
        load()
    assert str(refused.value).startswith(f"{named}: "), str(refused.value)
    if path != "Event.metadata.name":  # the one refusal that is Sensu Go's own rule
        assert "not supported" in str(refused.value)


@pytest.mark.parametrize("path", sorted(p for p in REFUSED if p.split(".")[0] in BASE_SPECS))
def test_a_refused_field_left_empty_as_sensu_dumps_it_loads(path: str) -> None:
    empty: Any = {bool: False, list: [], dict: {}, str: ""}.get(type(REFUSED[path]))
    load, _ = load_with(path, empty)
    load()


# -- USED: path -> a probe --------------------------------------------------------------------------

Probe = Callable[[], Awaitable[None] | None]
USED: dict[str, Probe] = {}


def used(*paths: str) -> Callable[[Probe], Probe]:
    def register(probe: Probe) -> Probe:
        for path in paths:
            assert path not in USED, path
            USED[path] = probe
        return probe

    return register


def proven_by(test: str, *paths: str, mentions: str = "") -> None:
    """``paths`` act as shown by ``test`` (``module::function``, run by the suite on its own):
    the probe checks that it exists and that its source names the field."""

    def probe() -> None:
        module, function = test.split("::")
        source = inspect.getsource(getattr(importlib.import_module(module), function))
        for path in paths:
            word = mentions or path.rsplit(".", 1)[-1]
            assert word in source, f"{test} does not mention {word!r}"

    for path in paths:
        assert path not in USED, path
        USED[path] = probe


# Checks: through the agent's executor (real subprocesses) and the pure core.

AGENT = Entity(
    entity_class="agent", subscriptions=["web", "entity:web1"], metadata=ObjectMeta(name="web1", namespace="default")
)


def check(command: str = "echo 'm 1 10'", **fields: Any) -> CheckConfig:
    fields = {"metadata": ObjectMeta(name="probe", namespace="default"), "subscriptions": ["web"], **fields}
    return CheckConfig(command=command, interval=10, **fields)


async def run(config: CheckConfig, hooks: dict[str, HookConfig] | None = None) -> Event:
    executor = CheckExecutor(AGENT, {"PATH": "/usr/bin:/bin"}, wall_clock=lambda: 1_800_000_000)
    executor.hooks = hooks or {}
    return await executor.execute(config, issued=0)


def graphite(**fields: Any) -> CheckConfig:
    return check("echo 'm 5 10'", output_metric_format="graphite_plaintext", **fields)


@used("CheckConfig.command")
async def _command() -> None:
    assert (await run(check("echo hi"))).check.output == "hi\n"  # type: ignore[union-attr]


@used("CheckConfig.timeout")
async def _timeout() -> None:
    assert (await run(check("sleep 5", timeout=1))).check.status == 2  # type: ignore[union-attr]


@used("CheckConfig.stdin")
async def _stdin() -> None:
    assert '"entity"' in (await run(check("cat", stdin=True))).check.output  # type: ignore[union-attr]
    assert (await run(check("cat"))).check.output == ""  # type: ignore[union-attr]


@used("CheckConfig.env_vars")
async def _env_vars() -> None:
    assert (await run(check('echo "$COLOR"', env_vars=["COLOR=blue"]))).check.output == "blue\n"  # type: ignore[union-attr]


@used("CheckConfig.check_hooks")
async def _check_hooks() -> None:
    hooks = {"why": HookConfig(metadata=ObjectMeta(name="why"), command="echo diagnosed")}
    event = await run(check("exit 1", check_hooks=[{"non-zero": ["why"]}]), hooks)
    assert [h.output for h in event.check.hooks] == ["diagnosed\n"]  # type: ignore[union-attr]


@used("CheckConfig.max_output_size")
async def _max_output_size() -> None:
    assert (await run(check("echo 123456", max_output_size=3))).check.output.startswith("123\n[output truncated")  # type: ignore[union-attr]


@used("CheckConfig.discard_output")
async def _discard_output() -> None:
    assert (await run(check("echo hi", discard_output=True))).check.output == ""  # type: ignore[union-attr]


@used("CheckConfig.output_metric_format")
async def _output_metric_format() -> None:
    assert [p.name for p in (await run(graphite())).metrics.points] == ["m"]  # type: ignore[union-attr]
    assert (await run(check())).metrics is None


@used("CheckConfig.output_metric_handlers")
async def _output_metric_handlers() -> None:
    assert (await run(check(output_metric_handlers=["influx"]))).metrics.handlers == ["influx"]  # type: ignore[union-attr]


@used("CheckConfig.output_metric_tags.name", "CheckConfig.output_metric_tags.value")
async def _output_metric_tags() -> None:
    event = await run(graphite(output_metric_tags=[MetricTag("env", "prod")]))
    assert [(t.name, t.value) for t in event.metrics.points[0].tags] == [("env", "prod")]  # type: ignore[union-attr]


def threshold(**fields: Any) -> list[dict[str, Any]]:
    rule = {"min": "", "max": "1", "status": 2, **fields.pop("rule", {})}
    return [{"name": "m", "thresholds": [rule], **fields}]


async def status_with(thresholds: list[dict[str, Any]]) -> int:
    config = decode(CheckConfig, {**encode(graphite()), "output_metric_thresholds": thresholds})
    return (await run(config)).check.status  # type: ignore[union-attr]


@used(
    "CheckConfig.output_metric_thresholds.name",
    "CheckConfig.output_metric_thresholds.thresholds.max",
    "CheckConfig.output_metric_thresholds.thresholds.status",
)
async def _threshold_max() -> None:
    assert await status_with(threshold()) == 2  # m is 5, over max 1
    assert await status_with(threshold(name="other")) == 0
    assert await status_with(threshold(rule={"max": "10"})) == 0


@used("CheckConfig.output_metric_thresholds.thresholds.min")
async def _threshold_min() -> None:
    assert await status_with(threshold(rule={"max": "", "min": "9"})) == 2


@used("CheckConfig.output_metric_thresholds.null_status")
async def _threshold_null_status() -> None:
    assert await status_with(threshold(name="absent", null_status=1)) == 1


@used("CheckConfig.output_metric_thresholds.tags.name", "CheckConfig.output_metric_thresholds.tags.value")
async def _threshold_tags() -> None:
    assert await status_with(threshold(tags=[{"name": "env", "value": "prod"}])) == 0  # m has no such tag


@used("CheckConfig.interval")
def _interval() -> None:
    ten, twenty = (
        schedule_for("web1", "probe", interval=10, cron=""),
        schedule_for("web1", "probe", interval=20, cron=""),
    )
    assert ten != twenty


@used("CheckConfig.cron")
def _cron() -> None:
    assert type(schedule_for("web1", "probe", interval=0, cron="* * * * *")).__name__ == "CronSchedule"


@used("CheckConfig.subscriptions")
def _subscriptions() -> None:
    assert Resources(checks=[check()]).checks_for(["web"]) != Resources(checks=[check(subscriptions=[])]).checks_for(
        ["web"]
    )


proven_by(
    "tests.unit.test_scheduler::test_an_ad_hoc_run_happens_at_once_even_for_an_unpublished_check", "CheckConfig.publish"
)


@used("CheckConfig.handlers", "Check.handlers")
def _handlers() -> None:
    resources = Resources(handlers=[Handler(metadata=ObjectMeta(name="h"), type="pipe", command="cat")])
    assert [w.handler.metadata.name for w in workflows_for(result_event(handlers=["h"]), resources)[0]] == ["h"]


@used("CheckConfig.pipelines.name")
async def _pipelines() -> None:
    event = await run(check(pipelines=[ResourceReference("alerts", "Pipeline", "core/v2")]))
    handler = ResourceReference("h", "Handler", "core/v2")
    resources = Resources(
        handlers=[Handler(metadata=ObjectMeta(name="h"), type="pipe", command="cat")],
        pipelines=[
            Pipeline(metadata=ObjectMeta(name="alerts"), workflows=[PipelineWorkflow(name="w", handler=handler)])
        ],
    )
    assert [w.pipeline for w in workflows_for(event, resources)[0]] == ["alerts"]


def result_event(status: int = 2, history: list[int] | None = None, **fields: Any) -> Event:
    fields = {"metadata": ObjectMeta(name="disk", namespace="default"), "subscriptions": ["web"], **fields}
    checked = Check(status=status, executed=100, history=[CheckHistory(s, 0) for s in history or []], **fields)
    return Event(entity=decode(Entity, encode(AGENT)), check=checked, metadata=ObjectMeta(namespace="default"))


FLAPPY = [0, 2] * 10


@used(
    "CheckConfig.high_flap_threshold",
    "CheckConfig.low_flap_threshold",
    "Check.high_flap_threshold",
    "Check.low_flap_threshold",
)
def _flapping() -> None:
    plain = result_event(history=FLAPPY).check
    flap = result_event(history=FLAPPY, low_flap_threshold=5, high_flap_threshold=20).check
    assert apply_result(plain, None).state == "failing"  # type: ignore[arg-type]
    assert apply_result(flap, None).state == "flapping"  # type: ignore[arg-type]
    assert apply_result(result_event(history=FLAPPY, high_flap_threshold=20).check, None).state == "failing"  # type: ignore[arg-type]


@used("CheckConfig.ttl_status", "Check.ttl_status")
def _ttl_status() -> None:
    assert ttl_expired(result_event(status=0, ttl=30), 200).check.status == 1  # type: ignore[union-attr]
    assert ttl_expired(result_event(status=0, ttl=30, ttl_status=2), 200).check.status == 2  # type: ignore[union-attr]


proven_by(
    "tests.unit.test_eventd::test_liveness_arms_a_ttl_for_a_stored_result_and_disarms_it_when_the_check_is_forgotten",
    "CheckConfig.ttl",
    "Check.ttl",
)

proven_by("tests.unit.test_backend_scheduler::test_each_run_goes_to_one_agent_in_turn", "CheckConfig.round_robin")
proven_by(
    "tests.unit.test_backend_scheduler::test_proxy_requests_run_once_per_matching_entity_on_every_agent",
    "CheckConfig.proxy_requests",
)


@used("CheckConfig.proxy_entity_name", "Check.proxy_entity_name")
def _proxy_entity_name() -> None:
    from pipeline.backend.entity_registry import EntityRegistry

    event = result_event(proxy_entity_name="switch1")
    registered = EntityRegistry().attribute(event)
    assert event.entity_name == "switch1"
    assert registered is not None
    assert (registered.name, registered.entity_class) == ("switch1", "proxy")


# Metadata: names and namespaces place every resource; labels select it (labelSelector, and
# tokens/filters for checks and entities); annotations of checks and entities drive the fatigue
# filter and tokens.


def _label_selected(kind: str, document: dict[str, Any]) -> bool:
    return matches_document(kind, document, labels=parse_label_selector("team == ops"))


@used(
    *[
        f"{kind}.metadata.labels"
        for kind in ("CheckConfig", "HookConfig", "Handler", "EventFilter", "Mutator", "Pipeline", "Silenced")
    ]
)
def _labels() -> None:
    for kind in ("CheckConfig", "Handler"):
        labelled = {"metadata": {"name": "x", "labels": {"team": "ops"}}}
        assert _label_selected(kind, labelled)
        assert not _label_selected(kind, {"metadata": {"name": "x"}})


@used(
    *[
        f"{kind}.metadata.name"
        for kind in ("CheckConfig", "HookConfig", "Handler", "EventFilter", "Mutator", "Pipeline")
    ],
    *[
        f"{kind}.metadata.namespace"
        for kind in ("CheckConfig", "HookConfig", "Handler", "EventFilter", "Mutator", "Pipeline", "Silenced")
    ],
)
def _names() -> None:
    resources = Resources(handlers=[Handler(metadata=ObjectMeta(name="h", namespace="ops"), type="pipe", command="c")])
    assert resources.handler("h", "ops") is not None
    assert resources.handler("h", "default") is None
    assert resources.handler("other", "ops") is None


WHEN_DAYS = ("all", "sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")


@used(*[f"EventFilter.when.days.{day}" for day in WHEN_DAYS])
def _when_days() -> None:
    sunday_noon = 1_795_348_800  # 2026-11-22, a Sunday, 12:00 UTC
    for weekday, day in enumerate(WHEN_DAYS[1:]):
        noon = sunday_noon + weekday * 86_400
        for windowed in ("all", day):
            spec = {**BASE_SPECS["EventFilter"], "when": {"days": {windowed: [{"begin": "11:00AM", "end": "1:00PM"}]}}}
            compiled = compile_event_filter(decode(EventFilter, {"metadata": {"name": "f"}, **spec}))
            assert compiled.evaluate(result_event(), noon).passed, (windowed, day)
            assert not compiled.evaluate(result_event(), noon + 7200).passed, (windowed, day)
            assert compiled.evaluate(result_event(), noon + 86_400).passed is (windowed == "all"), (windowed, day)


@used("CheckConfig.metadata.annotations", "Check.metadata.annotations", "Entity.metadata.annotations")
async def _annotations() -> None:
    async def fatigued(event: Event) -> bool:
        return not (await BuiltinFilters().filter(StageRef("fatigue", "default"), EventForms(event), 0)).passed

    first = result_event(status=2, occurrences=1)
    assert not await fatigued(first)  # the first occurrence is notified
    noisy = result_event(
        status=2, occurrences=1, metadata=ObjectMeta(name="disk", annotations={"fatigue_check/occurrences": "3"})
    )
    assert await fatigued(noisy)
    entity = decode(
        Entity, {**encode(AGENT), "metadata": {"name": "web1", "annotations": {"fatigue_check/occurrences": "4"}}}
    )
    assert await fatigued(Event(entity=entity, check=first.check))


# Hooks: run by the agent's executor.


async def hook_output(**fields: Any) -> str:
    hook = HookConfig(metadata=ObjectMeta(name="why"), **{"command": "echo diagnosed", **fields})
    event = await run(check("exit 1", check_hooks=[{"non-zero": ["why"]}]), {"why": hook})
    return event.check.hooks[0].output  # type: ignore[union-attr]


proven_by(
    "tests.e2e.test_assets::test_a_check_runs_the_program_of_its_asset_fetched_once", "CheckConfig.runtime_assets"
)
proven_by(
    "tests.unit.test_pipeline_runner::test_pipe_handlers_and_mutators_run_the_programs_of_their_assets",
    "Handler.runtime_assets",
    "Mutator.runtime_assets",
)
proven_by(
    "tests.unit.test_asset_executor::test_a_hook_runs_the_program_of_its_runtime_assets", "HookConfig.runtime_assets"
)
proven_by(
    "tests.unit.test_pipeline_runner::test_filters_and_javascript_mutators_run_the_javascript_of_their_assets",
    "EventFilter.runtime_assets",
)


@used("HookConfig.command")
async def _hook_command() -> None:
    assert await hook_output(command="echo other") == "other\n"


@used("HookConfig.timeout")
async def _hook_timeout() -> None:
    assert "timed out" in (await hook_output(command="sleep 5", timeout=1)).lower()


@used("HookConfig.stdin")
async def _hook_stdin() -> None:
    assert '"entity"' in await hook_output(command="cat", stdin=True)


# Handlers and mutators: through the backend's HandlerRunner, with real pipes.


async def handle(
    tmp: Path,
    handler: Handler,
    *,
    mutators: list[Mutator] = (),
    event: Event | None = None,  # type: ignore[assignment]
    filters: list[EventFilter] = (),
) -> BackendMetrics:  # type: ignore[assignment]
    resources = Resources(handlers=[handler], mutators=list(mutators), filters=list(filters))
    metrics = BackendMetrics.create()
    with trio.fail_after(20):
        await HandlerRunner(lambda: resources, metrics, {"PATH": "/usr/bin:/bin"}).handle(
            event or result_event(handlers=[handler.metadata.name])
        )
    return metrics


def pipe(tmp: Path, command: str = "cat", **fields: Any) -> Handler:
    return Handler(
        metadata=ObjectMeta(name="h", namespace="default"), type="pipe", command=f"{command} > {tmp / 'out'}", **fields
    )


@used("Handler.type", "Handler.command")
async def _pipe_handler(tmp: Path) -> None:
    await handle(tmp, pipe(tmp, "echo ran"))
    assert (tmp / "out").read_text() == "ran\n"


@used("Handler.env_vars")
async def _handler_env(tmp: Path) -> None:
    await handle(tmp, pipe(tmp, 'echo "$COLOR"', env_vars=["COLOR=blue"]))
    assert (tmp / "out").read_text() == "blue\n"


@used("Handler.mutator", "Check.output")
async def _handler_mutator(tmp: Path) -> None:
    await handle(tmp, pipe(tmp, mutator="only_check_output"), event=result_event(handlers=["h"], output="full\n"))
    assert (tmp / "out").read_text() == "full\n"


@used("Handler.filters")
async def _handler_filters(tmp: Path) -> None:
    await handle(tmp, pipe(tmp, "echo ran", filters=["is_incident"]), event=result_event(status=0, handlers=["h"]))
    assert not (tmp / "out").exists()


@used("Handler.timeout")
async def _handler_timeout(tmp: Path) -> None:
    await handle(tmp, pipe(tmp, "sleep 5; echo late", timeout=1, max_attempts=1))
    assert not (tmp / "out").exists()  # killed before it wrote


@used("Mutator.command", "Mutator.type")
async def _mutator_command(tmp: Path) -> None:
    shout = Mutator(metadata=ObjectMeta(name="shout", namespace="default"), command="echo shouted")
    await handle(tmp, pipe(tmp, mutator="shout"), mutators=[shout])
    assert (tmp / "out").read_text() == "shouted\n"


@used("Mutator.env_vars")
async def _mutator_env(tmp: Path) -> None:
    colour = Mutator(
        metadata=ObjectMeta(name="colour", namespace="default"), command='echo "$COLOR"', env_vars=["COLOR=blue"]
    )
    await handle(tmp, pipe(tmp, mutator="colour"), mutators=[colour])
    assert (tmp / "out").read_text() == "blue\n"


@used("Mutator.timeout")
async def _mutator_timeout(tmp: Path) -> None:
    slow = Mutator(metadata=ObjectMeta(name="slow", namespace="default"), command="sleep 5; echo late", timeout=1)
    await handle(tmp, pipe(tmp, mutator="slow", max_attempts=1), mutators=[slow])
    assert not (tmp / "out").exists()  # the mutator was killed: the handler never ran


@used("Mutator.eval")
async def _mutator_javascript(tmp: Path) -> None:
    script = Mutator(metadata=ObjectMeta(name="js", namespace="default"), type="javascript",
                     eval="return event.check.name + ' on ' + event.entity.name")  # fmt: skip
    await handle(tmp, pipe(tmp, mutator="js"), mutators=[script])
    assert (tmp / "out").read_text() == "disk on web1"


@used("Mutator.template")
async def _mutator_template(tmp: Path) -> None:
    template = Mutator(
        metadata=ObjectMeta(name="t", namespace="default"), type="template", template="{{ event.check.metadata.name }}"
    )
    await handle(tmp, pipe(tmp, mutator="t"), mutators=[template])
    assert (tmp / "out").read_text() == "disk"


@used("EventFilter.action", "EventFilter.expressions")
def _filter() -> None:
    def allows(action: str, expression: str) -> bool:
        compiled = compile_event_filter(
            EventFilter(metadata=ObjectMeta(name="f"), action=action, expressions=[expression])
        )
        return compiled.evaluate(result_event(), 0).passed

    assert allows("allow", "event.check.status == 2")
    assert not allows("allow", "event.check.status == 0")
    assert not allows("deny", "event.check.status == 2")


proven_by(
    "tests.unit.test_pipeline_runner::test_tcp_and_udp_handlers_write_the_mutated_body_once",
    "Handler.socket.host",
    "Handler.socket.port",
    mentions="HandlerSocket",
)
proven_by(
    "tests.unit.test_pipeline_runner::test_a_set_with_a_failing_member_still_runs_the_others",
    "Handler.handlers",
    mentions="set",
)
proven_by(
    "tests.unit.test_pipeline_runner::test_a_failing_handler_is_retried_with_backoff_until_it_succeeds_or_gives_up",
    "Handler.max_attempts",
)
proven_by(
    "tests.unit.test_handler_plugins::test_plugins_run_in_process_and_their_failures_are_isolated",
    "Handler.plugin",
    "Handler.options",
    mentions="plugin",
)
proven_by(
    "tests.unit.test_pipeline_runner::test_a_pipeline_named_by_the_event_runs_its_workflows",
    "Pipeline.workflows.name",
    "Pipeline.workflows.handler.name",
    "Pipeline.workflows.filters.name",
    "Pipeline.workflows.mutator.name",
    "Event.pipelines.name",
    mentions="workflows",
)


def collect(tmp: Path) -> list[str]:
    """What each run saw (how many marks), sorted; the marks and answers removed for the next."""
    counts = sorted(p.read_text().strip() for p in tmp.glob("seen.*"))
    for p in [*tmp.glob("seen.*"), *(tmp / "marks").iterdir()]:
        p.unlink()
    return counts


@used("Handler.concurrency")
async def _handler_concurrency(tmp: Path) -> None:
    """Two runs at once meet (each waits for the other's mark); with concurrency 1 they cannot."""
    (tmp / "marks").mkdir()
    script = (
        f"touch {tmp}/marks/$$; i=0; while [ $(ls {tmp}/marks | wc -l) -lt 2 ] && [ $i -lt 20 ]; "
        f"do sleep 0.05; i=$((i+1)); done; ls {tmp}/marks | wc -l > {tmp}/seen.$$"
    )

    async def seen(**fields: Any) -> list[str]:
        handler = Handler(metadata=ObjectMeta(name="h", namespace="default"), type="pipe", command=script, **fields)
        resources = Resources(handlers=[handler])
        runner = HandlerRunner(lambda: resources, BackendMetrics.create(), {"PATH": "/usr/bin:/bin"})
        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                for _ in range(2):
                    nursery.start_soon(runner.handle, result_event(handlers=["h"]))
        return collect(tmp)

    assert await seen() == ["2", "2"]
    assert await seen(concurrency=1) == ["1", "2"]


# Silences: the pure silencing rules.


def silence(**fields: Any) -> Silenced:
    return Silenced(metadata=ObjectMeta(name=Silenced(**fields).derived_name, namespace="default"), **fields)


@used("Namespace.name")
def _namespace_declared() -> None:
    check = CheckConfig(metadata=ObjectMeta(name="disk", namespace="prod"), command="true", interval=10)
    undeclared = Resources(checks=[check])
    declared = Resources(checks=[check], namespaces=[Namespace("prod")])
    assert [error.path for error in undeclared.reference_errors()] == ["metadata.namespace"]
    assert declared.reference_errors() == []


@used("Silenced.subscription", "Silenced.check", "Silenced.metadata.name")
def _silence_match() -> None:
    assert silencing_names(result_event(), [silence(subscription="web")], 100) == ["web:*"]
    assert silencing_names(result_event(), [silence(check="disk")], 100) == ["*:disk"]
    assert silencing_names(result_event(), [silence(check="cpu")], 100) == []


@used("Silenced.begin", "Silenced.expire", "Silenced.expire_at")
def _silence_times() -> None:
    assert silencing_names(result_event(), [silence(check="disk", begin=200)], 100) == []
    assert silencing_names(result_event(), [with_times(silence(check="disk", expire=10), 50)], 100) == []
    assert silencing_names(result_event(), [silence(check="disk", expire_at=90)], 100) == []


@used("Silenced.expire_on_resolve")
def _expire_on_resolve() -> None:
    resolved = result_event(status=0, history=[2, 0], silenced=["*:disk"])
    assert ended_by_resolution(resolved, {"*:disk": silence(check="disk")}) == []
    assert ended_by_resolution(resolved, {"*:disk": silence(check="disk", expire_on_resolve=True)}) == ["*:disk"]


# Entities: attributes are what tokens and filters read (Sensu Go's documented use), plus the
# behaviour of the ones the backend and agent act on.

ENTITY_TOKENS = [
    "entity_class",
    "user",
    "sensu_agent_version",
    "metadata.name",
    "metadata.namespace",
    "system.hostname",
    "system.os",
    "system.platform",
    "system.platform_family",
    "system.platform_version",
    "system.arch",
    "system.arm_version",
    "system.libc_type",
    "system.vm_system",
    "system.vm_role",
    "system.cloud_provider",
    "system.float_type",
]


def _token_probe(attribute: str) -> Probe:
    def probe() -> None:
        data = encode(AGENT)
        target = data
        *parents, leaf = attribute.split(".")
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = 7 if leaf == "arm_version" else "x-value"
        shown = substitute(f'{{{{ .{attribute} | default "none" }}}}', entity_scope(encode(decode(Entity, data))))
        assert shown in ("x-value", "7"), shown

    return probe


for _attribute in ENTITY_TOKENS:
    USED[f"Entity.{_attribute}"] = _token_probe(_attribute)


@used("Entity.metadata.labels")
def _entity_labels() -> None:
    labelled = decode(Entity, {**encode(AGENT), "metadata": {"name": "web1", "labels": {"team": "ops"}}})
    assert substitute("{{ .labels.team }}", entity_scope(encode(labelled))) == "ops"


@used("Entity.subscriptions")
def _entity_subscriptions() -> None:
    assert silencing_names(result_event(), [silence(subscription="web")], 100) == ["web:*"]
    alone = result_event()
    alone.entity.subscriptions = []  # type: ignore[union-attr]
    assert silencing_names(alone, [silence(subscription="web")], 100) == []


@used("Entity.redact")
def _redact() -> None:
    entity = decode(Entity, {**encode(AGENT), "metadata": {"name": "web1", "labels": {"team": "ops"}}})
    assert redacted_entity(entity).metadata.labels == {"team": "ops"}
    entity.redact = ["team"]
    assert redacted_entity(entity).metadata.labels != {"team": "ops"}


@used("Entity.keepalive_handlers")
def _keepalive_handlers() -> None:
    entity = decode(Entity, {**encode(AGENT), "keepalive_handlers": ["pager"]})
    keepalive = Event(entity=entity, check=Check(metadata=ObjectMeta(name="keepalive"), timeout=120, ttl=180))
    assert passing_keepalive(keepalive, 100).check.handlers == ["pager"]  # type: ignore[union-attr]


@used("Entity.deregistration.handler", "Entity.deregister")
def _deregistration() -> None:
    entity = decode(Entity, {**encode(AGENT), "deregister": True, "deregistration": {"handler": "cleanup"}})
    events = deregistration_events(entity, [], 100)
    assert any("cleanup" in (e.check.handlers if e.check else []) for e in events)
    assert entity.deregistration == Deregistration("cleanup")


proven_by(
    "tests.e2e.test_keepalive::test_agents_register_and_a_deregistering_agent_removes_its_entity_on_a_clean_stop",
    "Entity.last_seen",
    mentions="last_seen",
)


# Results: the backend computes these from the result and its history (a submitted value is
# replaced, as in Sensu Go), or acts on them.


@used(
    "Check.status",
    "Check.executed",
    "Check.history.status",
    "Check.history.executed",
    "Check.state",
    "Check.total_state_change",
    "Check.last_ok",
    "Check.occurrences",
    "Check.occurrences_watermark",
    "Check.is_flapping_start",
    "Check.is_flapping_end",
)
def _result_state() -> None:
    first = apply_result(result_event(status=0, occurrences=99, state="failing").check, None)  # type: ignore[arg-type]
    assert (first.state, first.occurrences, first.last_ok, first.history[-1].executed) == ("passing", 1, 100, 100)
    again = apply_result(result_event(status=2).check, first)  # type: ignore[arg-type]
    assert (again.state, again.occurrences, again.total_state_change) == ("failing", 1, 0)
    flapping = apply_result(result_event(history=FLAPPY, low_flap_threshold=5, high_flap_threshold=20).check, None)  # type: ignore[arg-type]
    assert flapping.is_flapping_start
    assert not flapping.is_flapping_end
    assert apply_result(result_event(status=0).check, flapping).is_flapping_end  # type: ignore[arg-type]


@used("Check.subscriptions")
def _check_subscriptions() -> None:
    """A silence of a subscription covers the results of checks of that subscription only."""
    assert silencing_names(result_event(), [silence(subscription="web")], 100) == ["web:*"]
    assert silencing_names(result_event(subscriptions=["db"]), [silence(subscription="web")], 100) == []


@used("Check.timeout")
def _keepalive_timeout() -> None:
    """A keepalive's timeout is its warning threshold (the agent's keepalive-warning-timeout)."""

    def status(timeout: int) -> int:
        keepalive = Event(
            entity=decode(Entity, encode(AGENT)),
            metadata=ObjectMeta(namespace="default"),
            check=Check(
                metadata=ObjectMeta(name="keepalive", namespace="default"), interval=20, timeout=timeout, ttl=240
            ),
        )
        failing = failing_keepalive(passing_keepalive(keepalive, 0), 0, 130)
        return failing.check.status  # type: ignore[union-attr]

    assert (status(120), status(200)) == (1, 0)


@used("Check.silenced", "Check.is_silenced")
def _silenced() -> None:
    event = result_event()
    assert silencing_names(event, [silence(check="disk")], 100) == ["*:disk"]
    event.check.silenced = ["*:disk"]  # type: ignore[union-attr]
    assert event.is_silenced


@used("Check.metadata.name", "Check.metadata.namespace", "Event.metadata.namespace", "Event.timestamp", "Event.id")
def _identity() -> None:
    assert silencing_names(result_event(), [silence(check="disk")], 100) == ["*:disk"]
    from pipeline.agent.api import prepare_local_event

    body = b'{"timestamp": 5, "id": "7d3a1f7e-0a52-4a53-9a5e-9f8f2a1d0c11", "check": {"metadata": {"name": "x"}}}'
    prepared = prepare_local_event(body, AGENT, 100)
    assert (prepared.timestamp, prepared.id) == (5, "7d3a1f7e-0a52-4a53-9a5e-9f8f2a1d0c11")
    assert prepare_local_event(b'{"check": {"metadata": {"name": "x"}}}', AGENT, 100).timestamp == 100


proven_by(
    "tests.e2e.test_secrets::test_secrets_reach_checks_handlers_and_mutators_and_nothing_else",
    "CheckConfig.secrets.name",
    "CheckConfig.secrets.secret",
    "Handler.secrets.name",
    "Handler.secrets.secret",
    "Mutator.secrets.name",
    "Mutator.secrets.secret",
)


proven_by(
    "tests.unit.test_subdues::test_weekend_window_written_in_summer_time",
    "CheckConfig.subdues.begin",
    "CheckConfig.subdues.end",
    "CheckConfig.subdues.repeat",
)


proven_by(
    "tests.unit.test_eventd::test_only_an_event_that_names_a_handler_or_pipeline_gets_a_handler_job",
    "Event.metrics.handlers",
    mentions="metrics",
)


# -- KEPT: stored and returned unchanged; that is all Sensu Go's meaning asks ----------------------

META_KEPT = "metadata.created_by: Sensu Go records who created it; informational"
ANNOTATIONS_KEPT = "annotations: non-identifying metadata for people and tools; Sensu Go reads none of these"
RECORD = "a copy of the check's configuration the result carries: Sensu Go stores it and hands it to handlers"

RECORD_FIELDS = """
    command publish runtime_assets check_hooks stdin subdue cron proxy_requests round_robin output_metric_format
    output_metric_handlers env_vars max_output_size discard_output secrets output_metric_tags output_metric_thresholds
    subdues interval pipelines scheduler processed_by asset_status duration issued hooks
"""

KEPT: dict[str, str] = {
    **{
        f"{kind}.metadata.created_by": META_KEPT
        for kind in (
            "CheckConfig",
            "HookConfig",
            "Handler",
            "EventFilter",
            "Mutator",
            "Pipeline",
            "Silenced",
            "Entity",
            "Check",
            "Event",
        )
    },
    **{
        f"{kind}.metadata.annotations": ANNOTATIONS_KEPT
        for kind in ("HookConfig", "Handler", "EventFilter", "Mutator", "Pipeline", "Silenced", "Event")
    },
    "Silenced.creator": "who silenced it: shown to people (sensuctl silenced list)",
    "Silenced.reason": "why it is silenced: shown to people",
    "Check.metadata.labels": "the check's labels, copied into the result for handlers and filters",
    "Event.metadata.labels": "labels of the event, for handlers and filters",
    "Event.sequence": "the agent's per-check run counter: informational (Sensu Go)",
    # The data points themselves: the payload metric handlers receive, unchanged.
    "Event.metrics.points": "the metric points: the payload handlers receive, unchanged",
    # The inventory the agent discovers: shown and matched by filters as a whole.
    "Entity.system.network": "the agent's network interfaces: inventory shown to people and filters",
    "Entity.system.processes": "the agent's processes: inventory shown to people and filters",
    # A result's record of how it was made: Sensu Go does not act on these for a result either.
    **{f"Check.{name}": RECORD for name in RECORD_FIELDS.split()},
}

CLASSIFIED = set(REFUSED) | set(KEPT) | set(USED)


def test_every_field_is_classified_exactly_once() -> None:
    paths = all_paths()
    missing = [p for p in paths if sum(p in table for table in (REFUSED, USED, KEPT)) != 1]
    assert not missing, f"fields neither refused, used nor kept (or in two tables): {missing}"
    stale = sorted(CLASSIFIED - set(paths))
    assert not stale, f"classified paths no model has: {stale}"


@pytest.mark.parametrize("path", sorted(USED))
async def test_a_used_field_acts(path: str, tmp_path: Path) -> None:
    probe = USED[path]
    result = probe(tmp_path) if "tmp" in inspect.signature(probe).parameters else probe()  # type: ignore[call-arg]
    if inspect.isawaitable(result):
        await result

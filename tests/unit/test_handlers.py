"""Handlers named by an event run isolated: a failing, slow or missing one never stops another."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.backend.handlers import HandlerRunner
from pipeline.config import Resources
from pipeline.core.workflows import workflows_for
from pipeline.metrics import BackendMetrics
from pipeline.model import Check, Entity, Event, Metrics, ObjectMeta, ResourceReference
from pipeline.model.pipeline import Pipeline, PipelineWorkflow
from pipeline.model.resources import Handler


def pipe_handler(name: str, command: str, timeout: int = 0, max_attempts: int = 1) -> Handler:
    return Handler(metadata=ObjectMeta(name=name, namespace="default"), type="pipe", command=command, timeout=timeout,
                   max_attempts=max_attempts)  # fmt: skip


def event_for(*handlers: str, metric_handlers: tuple[str, ...] = ()) -> Event:
    return Event(
        entity=Entity(metadata=ObjectMeta(name="web1", namespace="default")),
        check=Check(metadata=ObjectMeta(name="disk", namespace="default"), status=2, handlers=list(handlers)),
        metrics=Metrics(handlers=list(metric_handlers)) if metric_handlers else None,
        id="5f0c3c1e-3a43-4bb9-8d2e-5a2b1c9d7e6f",
    )


def test_legacy_workflows_are_unique_and_sorted() -> None:
    resources = Resources(handlers=[pipe_handler(name, "true") for name in ("slack", "email", "graphite")])
    event = event_for("slack", "email", "slack", metric_handlers=("graphite", "email"))
    workflows, problems = workflows_for(event, resources)
    assert [w.handler.metadata.name for w in workflows] == ["email", "graphite", "slack"]
    assert problems == []


@pytest.mark.trio
async def test_failing_slow_and_missing_handlers_do_not_stop_the_others(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    resources = Resources(
        checks=[],
        handlers=[
            pipe_handler("good", f"cat > {out}"),
            pipe_handler("broken", "echo boom; exit 7"),
            pipe_handler("slow", "sleep 30", timeout=1),
        ],
    )
    metrics = BackendMetrics.create()
    runner = HandlerRunner(lambda: resources, metrics, {"PATH": "/usr/bin:/bin"})
    event = event_for("broken", "good", "missing", "slow")
    await runner.handle(event)
    assert Event.from_json(out.read_bytes()) == event

    def failures(handler: str, reason: str) -> float | None:
        return metrics.registry.get_sample_value(
            "pipeline_handler_failures_total", {"handler": handler, "reason": reason}
        )

    assert failures("broken", "exit_status") == 1
    assert failures("slow", "timeout") == 1
    assert failures("missing", "missing") == 1
    assert metrics.registry.get_sample_value("pipeline_handler_runs_total", {"handler": "good"}) == 1
    assert failures("good", "exit_status") is None


@pytest.mark.trio
async def test_names_that_point_at_nothing_at_event_time_are_counted_and_the_rest_runs(tmp_path: Path) -> None:
    """Resources arrive in any order: a handler's filter or mutator, a set's member or a workflow's
    handler may be missing when an event comes; that part is skipped and counted, the rest runs."""
    out = tmp_path / "out.json"
    filtered = pipe_handler("filtered", f"cat >> {tmp_path / 'never'}")
    filtered.filters = ["ghost-filter"]
    mutated = pipe_handler("mutated", f"cat >> {tmp_path / 'never'}")
    mutated.mutator = "ghost-mutator"
    team = Handler(metadata=ObjectMeta(name="team", namespace="default"), type="set", handlers=["good", "nobody"])
    pipeline = Pipeline(metadata=ObjectMeta(name="p", namespace="default"),
                        workflows=[PipelineWorkflow(name="w", handler=ResourceReference(name="ghost"))])  # fmt: skip
    resources = Resources(handlers=[pipe_handler("good", f"cat > {out}"), filtered, mutated, team],
                          pipelines=[pipeline])  # fmt: skip
    metrics = BackendMetrics.create()
    runner = HandlerRunner(lambda: resources, metrics, {"PATH": "/usr/bin:/bin"})
    event = event_for("filtered", "mutated", "team")
    event.pipelines = [ResourceReference(name="p", type="Pipeline", api_version="core/v2")]
    await runner.handle(event)
    sample = metrics.registry.get_sample_value
    assert Event.from_json(out.read_bytes()) == event
    assert not (tmp_path / "never").exists()
    assert sample("pipeline_filter_errors_total", {"filter": "ghost-filter"}) == 1
    assert sample("pipeline_mutator_failures_total", {"mutator": "ghost-mutator", "reason": "missing"}) == 1
    assert sample("pipeline_handler_failures_total", {"handler": "nobody", "reason": "missing"}) == 1
    assert sample("pipeline_handler_failures_total", {"handler": "p", "reason": "pipeline"}) == 1

"""Which workflows an event runs: Sensu Go's legacy pipeline from ``check.handlers`` and
``metrics.handlers``, plus the pipelines the event names. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.model import DEFAULT_NAMESPACE, Event
from pipeline.model.resources import Handler, Resources


@dataclass(slots=True, frozen=True)
class Workflow:
    name: str
    #: the Pipeline resource it belongs to; empty for the legacy pipeline
    pipeline: str
    filters: tuple[str, ...]
    mutator: str
    handler: Handler


@dataclass(slots=True, frozen=True)
class Problem:
    """Something an event names that cannot run: ``reason`` is ``missing`` (a handler) or ``pipeline``."""

    reason: str
    name: str
    message: str


def legacy_handler_names(event: Event) -> list[str]:
    names = list(event.check.handlers) if event.check is not None else []
    if event.metrics is not None:
        names.extend(event.metrics.handlers)
    return names


def names_handlers(event: Event) -> bool:
    """Whether the event can have a workflow at all, whatever the resources: it names a handler
    or a pipeline (an event that names neither needs no handler job)."""
    return bool(legacy_handler_names(event) or event.pipelines)


def workflows_for(event: Event, resources: Resources) -> tuple[list[Workflow], list[Problem]]:
    """The workflows to run, and the problems met resolving them (missing handlers, pipelines)."""
    namespace = event.namespace or DEFAULT_NAMESPACE
    handlers, missing = resources.expand_handlers(legacy_handler_names(event), namespace)
    problems = [Problem("missing", name, f"handler {name!r} not found") for name in missing]
    workflows = [
        Workflow(f"legacy-pipeline-workflow-{h.metadata.name}", "", tuple(h.filters), h.mutator, h) for h in handlers
    ]
    for ref in event.pipelines:
        pipeline = resources.pipeline(ref.name, namespace)
        if pipeline is None:
            problems.append(Problem("pipeline", ref.name, f"pipeline {ref.name!r} not found"))
            continue
        for workflow in pipeline.workflows:
            handler_name = workflow.handler.name if workflow.handler else ""
            handler = resources.handler(handler_name, namespace)
            if handler is None or handler.type == "set":
                message = f"pipeline {ref.name!r} workflow {workflow.name!r}: no usable handler {handler_name!r}"
                problems.append(Problem("pipeline", ref.name, message))
                continue
            mutator = workflow.mutator.name if workflow.mutator else ""
            workflows.append(
                Workflow(workflow.name, ref.name, tuple(f.name for f in workflow.filters), mutator, handler)
            )
    return workflows, problems

"""The recorder the handler runner writes what it did into: one trace per event that has a
workflow, in a ring of the last :data:`~pipeline.core.traces.TRACES_KEPT` (dropped traces are
counted in ``pipeline_traces_dropped``). Everything is in memory and appended in place as the
workflows go: the hot path does no I/O and copies nothing."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from prometheus_client import CollectorRegistry, Counter

from pipeline.core.traces import TRACES_KEPT, TraceRing
from pipeline.core.workflows import Problem, Workflow
from pipeline.model import DEFAULT_NAMESPACE, Event
from pipeline.model.trace import EventTrace, WorkflowTrace


class PipelineTraces:
    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        capacity: int = TRACES_KEPT,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.ring = TraceRing(capacity)
        self._wall_clock = wall_clock
        self.dropped = Counter(
            "pipeline_traces_dropped",
            "Pipeline traces (what the handlers did with an event) pushed out of the ring by newer ones",
            registry=registry,
        )

    @property
    def capacity(self) -> int:
        return self.ring.capacity

    def begin(self, event: Event, workflows: Sequence[Workflow], problems: Sequence[Problem]) -> list[WorkflowTrace]:
        """Start the trace of ``event``: one record per workflow, in ``workflows``' order, for the
        runner to fill in."""
        records = [workflow_trace(w) for w in workflows]
        trace = EventTrace(event.id, event.namespace or DEFAULT_NAMESPACE, event.entity_name, event.check_name,
                           int(self._wall_clock()), records, [p.message for p in problems])  # fmt: skip
        dropped = self.ring.add(trace)
        if dropped:
            self.dropped.inc(dropped)
        return records

    def replayed(self, event: Event, record: WorkflowTrace) -> None:
        """Add the run of a replayed dead letter to its event's trace (a new trace when the ring
        no longer holds it), so that the event page shows the first run and the replay."""
        trace = self.ring.get(event.id)
        if trace is None:
            trace = EventTrace(event.id, event.namespace or DEFAULT_NAMESPACE, event.entity_name, event.check_name,
                               int(self._wall_clock()), [])  # fmt: skip
            dropped = self.ring.add(trace)
            if dropped:
                self.dropped.inc(dropped)
        trace.workflows.append(record)

    def get(self, event_id: str) -> EventTrace | None:
        return self.ring.get(event_id)


def workflow_trace(workflow: Workflow) -> WorkflowTrace:
    """An empty record of ``workflow``."""
    return WorkflowTrace(workflow.name, workflow.pipeline, workflow.handler.metadata.name, mutator=workflow.mutator)

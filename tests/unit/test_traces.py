"""What the pipeline did with an event: the bounded ring of traces, and the handler runner filling
in each workflow's filters, mutator, handler attempts and dead letter."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from pipeline.backend.handlers import HandlerRunner
from pipeline.backend.traces import PipelineTraces
from pipeline.config import Resources
from pipeline.core.traces import TraceRing
from pipeline.metrics import BackendMetrics
from pipeline.model.deadletter import DeadLetter
from pipeline.model.pipeline import EventFilter, Mutator
from pipeline.model.trace import OUTPUT_KEPT, EventTrace, output_end
from tests.unit.test_pipeline_runner import ENV, event, meta, pipe


def test_the_ring_keeps_the_last_traces_and_says_how_many_it_pushed_out() -> None:
    ring = TraceRing(2)
    assert [ring.add(EventTrace(f"e{i}")) for i in range(4)] == [0, 0, 1, 1]
    assert len(ring) == 2
    assert ring.get("e0") is None
    assert ring.get("e1") is None
    assert ring.get("e3") is not None
    assert ring.add(EventTrace("e2")) == 0  # the same event again replaces its trace
    with pytest.raises(ValueError, match="capacity"):
        TraceRing(0)


def test_the_end_of_a_long_output_is_kept_where_a_traceback_names_the_exception() -> None:
    kept = output_end("x" * 2000 + "\nValueError: bad\n")
    assert kept.endswith("ValueError: bad")
    assert len(kept) == OUTPUT_KEPT + 1  # and the mark that the start was cut
    assert output_end(" short \n") == "short"


def test_dropped_traces_are_counted() -> None:
    registry = CollectorRegistry()
    traces = PipelineTraces(registry, capacity=1)
    for i in range(3):
        e = event("h")
        e.id = f"id{i}"
        traces.begin(e, [], [])
    assert registry.get_sample_value("pipeline_traces_dropped_total") == 2
    assert traces.get("id2") is not None
    assert traces.get("id0") is None


async def test_the_runner_records_each_filter_verdict_the_mutator_and_each_attempt(tmp_path: Path) -> None:
    resources = Resources(
        handlers=[pipe("paged", "cat > /dev/null", filters=["is_incident", "not-web"]),
                  pipe("logged", "cat > /dev/null; echo logged it", mutator="shout"),
                  pipe("down", "echo Traceback; echo 'ValueError: no route' >&2; exit 3", max_attempts=2),
                  pipe("mangled", "cat", mutator="fails")],
        filters=[EventFilter(metadata=meta("not-web"), action="deny",
                             expressions=["event.entity.name.indexOf('web') === 0"])],
        mutators=[Mutator(metadata=meta("shout"), command="tr a-z A-Z"),
                  Mutator(metadata=meta("fails"), command="exit 4")],
    )  # fmt: skip
    letters: list[DeadLetter] = []

    async def keep(letter: DeadLetter) -> None:
        letters.append(letter)

    traces = PipelineTraces(CollectorRegistry())
    runner = HandlerRunner(lambda: resources, BackendMetrics.create(), ENV, retry_base=0.01, dead_letters=keep,
                           traces=traces)  # fmt: skip
    e = event("paged", "logged", "down", "mangled", "nowhere")
    await runner.handle(e)
    trace = traces.get(e.id)
    assert trace is not None
    assert (trace.entity, trace.check, trace.problems) == ("web1", "disk", ["handler 'nowhere' not found"])
    by_handler = {w.handler: w for w in trace.workflows}
    paged = by_handler["paged"]
    assert [(f.name, f.verdict) for f in paged.filters] == [("is_incident", "passed"), ("not-web", "filtered")]
    assert (paged.outcome, paged.attempts, paged.mutator_outcome) == ("filtered", [], "")
    logged = by_handler["logged"]
    assert (logged.mutator, logged.mutator_outcome, logged.outcome) == ("shout", "ok", "handled")
    assert [(a.attempt, a.ok, a.output) for a in logged.attempts] == [(1, True, "logged it")]
    down = by_handler["down"]
    assert [(a.attempt, a.ok, a.reason) for a in down.attempts] == [
        (1, False, "exit_status"),
        (2, False, "exit_status"),
    ]
    assert "exited 3" in down.attempts[-1].output
    assert (down.outcome, down.dead_letter) == ("dead letter", letters[0].id)
    mangled = by_handler["mangled"]
    assert mangled.outcome == "mutator failed"
    assert mangled.mutator_outcome.startswith("failed (exit_status): exited 4")


async def test_an_event_with_nothing_to_do_leaves_no_trace() -> None:
    traces = PipelineTraces(CollectorRegistry())
    e = event()
    await HandlerRunner(lambda: Resources(), BackendMetrics.create(), ENV, traces=traces).handle(e)
    assert traces.get(e.id) is None

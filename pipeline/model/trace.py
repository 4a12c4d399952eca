"""What the pipeline did with one event: each workflow's filters' verdicts, its mutator, each
handler attempt, and the dead letter it left. Plain records the handler runner fills in as a
workflow goes (appending to lists: no I/O, no copies), kept in a bounded ring
(:class:`pipeline.core.traces.TraceRing`) and shown on the dashboard's event page and by
``GET /api/pipeline/v1/events/{id}/trace``."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.model.codec import INT64, UINT32, field

#: A filter's verdicts.
PASSED, FILTERED, ERROR = "passed", "filtered", "error"
#: A workflow's outcomes.
RUNNING, HANDLED, STOPPED = "running", "handled", "filtered"
MUTATOR_FAILED, DEAD_LETTER = "mutator failed", "dead letter"
#: Characters of a handler's output or error kept per attempt: the end, where a traceback names the exception.
OUTPUT_KEPT = 500


def output_end(text: str) -> str:
    """The last :data:`OUTPUT_KEPT` characters of ``text``, stripped."""
    text = text.strip()
    return text if len(text) <= OUTPUT_KEPT else "…" + text[-OUTPUT_KEPT:]


@dataclass(slots=True)
class FilterVerdict:
    name: str = field("")
    #: ``passed``, ``filtered`` or ``error`` (an error stops the event, as a filtered one)
    verdict: str = field("")
    error: str = field("", omitempty=True)


@dataclass(slots=True)
class HandlerAttempt:
    attempt: int = field(0, bounds=UINT32)
    ok: bool = field(False)
    #: the end of the handler's output (success) or of its error (failure)
    output: str = field("", omitempty=True)
    #: why it failed: ``exit_status``, ``timeout``, ``connection`` ...
    reason: str = field("", omitempty=True)


@dataclass(slots=True)
class WorkflowTrace:
    name: str = field("")
    pipeline: str = field("", omitempty=True)
    handler: str = field("")
    filters: list[FilterVerdict] = field([])
    mutator: str = field("", omitempty=True)
    #: "" (not reached), ``ok``, ``not run`` (a plugin handler takes the event itself) or the error
    mutator_outcome: str = field("", omitempty=True)
    attempts: list[HandlerAttempt] = field([])
    #: the id of the dead letter the workflow left, when every attempt failed
    dead_letter: str = field("", omitempty=True)
    outcome: str = field(RUNNING)
    #: the dead letter this run replayed (``pipeline deadletter replay``, the dashboard's Replay)
    replay_of: str = field("", omitempty=True)

    def filtered(self, name: str, verdict: str, error: str = "") -> None:
        self.filters.append(FilterVerdict(name, verdict, error))

    def attempted(self, attempt: int, ok: bool, output: str, reason: str = "") -> None:
        self.attempts.append(HandlerAttempt(attempt, ok, output_end(output), reason))


@dataclass(slots=True)
class EventTrace:
    event_id: str = field("")
    namespace: str = field("")
    entity: str = field("")
    check: str = field("", omitempty=True)
    #: wall-clock seconds when the handlers took the event
    started: int = field(0, bounds=INT64)
    workflows: list[WorkflowTrace] = field([])
    #: what the event names that cannot run (a missing handler or pipeline)
    problems: list[str] = field([], omitempty=True)

"""The outbox's records: an event whose handlers must run, kept until they have.

That an event's handlers must run is stored in the same transaction as the event, before the
submitter is acknowledged; each workflow that finishes is recorded, and the job is removed
when the last one has. A backend that restarts runs what was not recorded as done, so a
handler sees an event again only when a crash came between its run and that record.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.model.event import Event


@dataclass(slots=True)
class HandlerJob:
    #: the job's row in the outbox; 0 for work that is not kept there (tests, dead letter replays)
    seq: int
    event: Event
    #: the workflows that already ran (``pipeline/workflow``, see :func:`workflow_key`)
    done: frozenset[str] = frozenset()


@dataclass(slots=True, frozen=True)
class StoredJob:
    """A job as the store gives it back: the event still in msgpack, decoded by whoever resumes
    it, so that one unreadable job is reported and set aside instead of stopping the others."""

    seq: int
    event: bytes
    done: frozenset[str] = frozenset()

    def decode(self) -> HandlerJob:
        """The job (raises ValidationError when the stored event does not load)."""
        return HandlerJob(self.seq, Event.from_msgpack(self.event), self.done)


@dataclass(slots=True, frozen=True)
class Completion:
    """One workflow of a job ran (``workflow``), or all of them did (``workflow`` None)."""

    seq: int
    workflow: str | None = None


def workflow_key(pipeline: str, workflow: str) -> str:
    """A workflow's name among the event's: two pipelines may each have a workflow ``page``."""
    return f"{pipeline}/{workflow}"

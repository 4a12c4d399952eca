"""A dead letter: an event a handler still failed to take after every attempt."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.model.codec import INT64, UINT32, field
from pipeline.model.event import Event


@dataclass(slots=True)
class DeadLetter:
    id: str = field("")
    created: int = field(0, bounds=INT64)
    namespace: str = field("")
    handler: str = field("")
    workflow: str = field("")
    pipeline: str = field("", omitempty=True)
    mutator: str = field("", omitempty=True)
    error: str = field("")
    attempts: int = field(0, bounds=UINT32)
    event: Event = field(factory=Event)

"""Messages to and from the one owner of check state, the event processor.

Deletes and deregistrations are commands on its inbox, taken in turn with the results around
them, so that a result and the delete of its check can never interleave. What it stored or
forgot it tells the keepalive and ttl monitor (liveness) on a bounded channel of notices, which
is how a later stage learns what an earlier one did without a callback into it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import trio

from pipeline.errors import StoreError
from pipeline.model import Check, Event
from pipeline.store.base import CheckKey

#: Notices waiting for liveness, at most.
NOTICES_SIZE = 1000


@dataclass(slots=True)
class DeleteEvent:
    """Delete a check's latest event and forget its state; ``deleted`` says whether there was one."""

    namespace: str
    entity: str
    check: str
    done: trio.Event = field(default_factory=trio.Event)
    deleted: bool = False
    error: StoreError | None = None


@dataclass(slots=True)
class DeleteEntity:
    """Remove an entity and its latest events, and forget its checks' state; ``events`` are the
    latest events it had (for the handlers to hear them resolved)."""

    namespace: str
    name: str
    done: trio.Event = field(default_factory=trio.Event)
    events: list[Event] = field(default_factory=list)
    error: StoreError | None = None


Command = DeleteEvent | DeleteEntity


@dataclass(slots=True, frozen=True)
class ChecksStored:
    """Check results just stored, at wall-clock time ``at``."""

    checks: tuple[tuple[CheckKey, Check], ...]
    at: float


@dataclass(slots=True, frozen=True)
class ChecksForgotten:
    """Checks whose state is gone (their event deleted, or their entity)."""

    keys: tuple[CheckKey, ...]


Notice = ChecksStored | ChecksForgotten


def open_notices() -> tuple[trio.MemorySendChannel[Notice], trio.MemoryReceiveChannel[Notice]]:
    return trio.open_memory_channel[Notice](NOTICES_SIZE)

"""Handing events from the HTTP API to the event processor: all of a request's events or none,
answered once each is stored, 503 with ``Retry-After`` when the pipeline is full, and 413 for
an event over the maximum event size (an operator may allow bodies larger than one event)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import trio
from starlette.responses import Response

from pipeline.backend.eventd import Outcome, Replays
from pipeline.errors import EventTooLarge
from pipeline.http_answers import error_response
from pipeline.metrics import BackendMetrics
from pipeline.model import Event
from pipeline.wire.limits import MAX_EVENT_BYTES


class Offer(Protocol):
    """Queue all the events or none (False: the pipeline is full); ``replays``: what their ids say."""

    def __call__(
        self, events: Sequence[Event], reply: Callable[[str, Outcome], None], *, replays: Replays = Replays.DROP
    ) -> bool: ...


#: Seconds a client told the pipeline is full should wait.
RETRY_AFTER = 1


def hold_to_size(events: Sequence[Event]) -> None:
    """EventTooLarge for the first of ``events`` over the maximum event size. Measured on every
    event: decoding fills in defaults, so a small body can make a large event (``{}`` as a
    metric point is a whole point)."""
    for event in events:
        size = len(event.to_msgpack())
        if size > MAX_EVENT_BYTES:
            raise EventTooLarge(size, MAX_EVENT_BYTES)


class PipelineFull(Exception):
    """The event processor's inbox has no room for the events."""


async def store_all(offer: Offer, events: Sequence[Event], *, replays: Replays = Replays.DROP) -> list[Outcome]:
    """Queue the events and wait until each is stored (or failed); PipelineFull if there is no
    room, EventTooLarge (nothing queued) for an event over the maximum event size."""
    return [outcome for _, outcome in await store_each(offer, events, replays=replays)]


async def store_each(
    offer: Offer, events: Sequence[Event], *, replays: Replays = Replays.DROP
) -> list[tuple[str, Outcome]]:
    """:func:`store_all`, each outcome with the id of its event (as the processor left it)."""
    hold_to_size(events)
    outcomes: list[tuple[str, Outcome]] = []
    done = trio.Event()

    def reply(event_id: str, outcome: Outcome) -> None:
        outcomes.append((event_id, outcome))
        if len(outcomes) == len(events):
            done.set()

    if not events:
        return outcomes
    if not offer(events, reply, replays=replays):
        raise PipelineFull()
    await done.wait()
    return outcomes


#: What the submitter of an event the store refused for what it holds is told (an API client, with
#: 422; an agent, in its ack's rejections): retrying cannot help.
STORE_REFUSED = "the event store refused this event (the backend's log names it and says why); it was not stored"


def refused_by_store(count: int = 1, of: int = 1) -> Response:
    """422: ``count`` of the request's ``of`` events refused by the store (the others are stored)."""
    if of == 1:
        return error_response(422, STORE_REFUSED)
    return error_response(422, f"the event store refused {count} of the {of} events (the backend's log names them "
                               "and says why); they were not stored, the others were")  # fmt: skip


def busy(metrics: BackendMetrics, source: str) -> Response:
    metrics.api_busy.labels(source).inc()
    return error_response(503, "the pipeline is full; retry shortly", headers={"Retry-After": str(RETRY_AFTER)})

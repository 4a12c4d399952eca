"""Sensu Go's events API. A submitted event takes the same path as an agent's (state, store,
handlers); the answer is sent once the event is stored or, with the intake journal
(:mod:`pipeline.backend.journal`), once journaled; either way it survives a crash of the backend
process, and a GET right after a 201 sees it.

An event written here is always a new result: its ``id`` is kept unless already used, then
replaced (``sensuctl event resolve`` sends the event it read back with its id). The body is
Sensu's flat event or the wrapped form ``{type: Event, api_version, metadata, spec}``; with no
entity, the entity is the one the path names (its stored entity, or a new proxy)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgpack
import ormsgpack
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pipeline.backend.api.common import client_of, fill_or_match, not_found, unknown_namespace
from pipeline.backend.api.lists import event_key, listed, takes_list_query
from pipeline.backend.api.writes import ignored_warning
from pipeline.backend.eventd import Outcome, Replays
from pipeline.backend.intake import Offer, PipelineFull, busy, refused_by_store, store_all
from pipeline.backend.journal import IntakeJournal
from pipeline.errors import EventTooLarge, ValidationError
from pipeline.http_answers import error_response
from pipeline.logs import get_logger
from pipeline.metrics import BackendMetrics
from pipeline.model import Entity, Event, new_event_id
from pipeline.model.codec import load_json
from pipeline.model.meta import ObjectMeta
from pipeline.store.service import StoreService
from pipeline.wire.limits import MAX_EVENT_BYTES

log = get_logger("backend.api")

EVENTS = "/api/core/v2/namespaces/{namespace}/events"
#: (namespace, entity, check) -> whether there was such an event
DeleteEvent = Callable[[str, str, str], Awaitable[bool]]


def unwrapped(data: Any) -> Any:
    """The event of a body in the wrapped form ``{type: Event, api_version, metadata, spec}``
    (``sensuctl create``'s), or the body as it is; ValidationError for another type."""
    if not isinstance(data, dict) or "spec" not in data or "type" not in data:
        return data
    if data["type"] != "Event" or data.get("api_version", "core/v2") != "core/v2":
        raise ValidationError("type", f"expected an Event of core/v2, got {data['type']!r} {data.get('api_version')!r}")
    spec = data["spec"]
    if isinstance(spec, dict) and isinstance(data.get("metadata"), dict) and "metadata" not in spec:
        spec = {**spec, "metadata": data["metadata"]}
    return spec


def prepare_event(
    body: bytes,
    namespace: str,
    *,
    entity: str | None = None,
    check: str | None = None,
    now: float,
    ignored: list[str] | None = None,
) -> tuple[Event, Replays]:
    """Decode and complete a submitted event as Sensu Go's API does (raises ValidationError).
    Also says what its id is: made here (it cannot be a replay), or the client's (never a
    replay either: a used one is replaced). Fields the model does not know are dropped, as Sensu
    Go's JSON decoding does, and their paths put in ``ignored``."""
    event = Event.from_dict(unwrapped(load_json(body)), ignored=[] if ignored is None else ignored)
    if event.entity is None:
        if entity is None:
            raise ValidationError("entity", "event must contain an entity")
        event.entity = Entity(metadata=ObjectMeta(name=entity, namespace=namespace))
    if entity is not None:
        fill_or_match(event.entity.metadata, "name", entity, "entity.metadata.name")
    if check is not None:
        if event.check is None:
            raise ValidationError("check", "event must contain a check")
        fill_or_match(event.check.metadata, "name", check, "check.metadata.name")
    fill_or_match(event.entity.metadata, "namespace", namespace, "entity.metadata.namespace")
    if event.check is not None:
        fill_or_match(event.check.metadata, "namespace", namespace, "check.metadata.namespace")
        if not event.check.executed:
            event.check.executed = int(now)
    if not event.entity.entity_class:
        event.entity.entity_class = "proxy"
    if not event.metadata.namespace:
        event.metadata.namespace = namespace
    event.validate()  # before an id is made here: only the client's own needs its form checked
    if event.id:
        return event, Replays.RENEW
    event.id = new_event_id()
    return event, Replays.NONE


#: The journal's record of a submission: what it was (the body and the path's parts), the id and
#: the time given to it. Journaled as it came, a submission costs no encoding of its event (about
#: 30 µs); replayed, it is decoded again as it was (:func:`event_of_record`).
RECORD_VERSION = 1
#: Bodies this small cannot make an event over MAX_EVENT_BYTES, whatever defaults decoding fills
#: in (an empty ``{}`` in a list, 3 bytes with its comma, becomes at most about 30 bytes of
#: msgpack: 32 times is a bound with room), so their event is not encoded to be measured.
_EXPANSION, _DEFAULTS = 32, 64 * 1024


def small_body(body_size: int) -> bool:
    """Whether a body this size cannot make an event over the maximum event size."""
    return body_size * _EXPANSION + _DEFAULTS <= MAX_EVENT_BYTES


def event_of_record(record: bytes) -> Event:
    """The event a journal record was taken as (raises ValueError)."""
    try:
        version, body, namespace, entity, check, event_id, now = msgpack.unpackb(record)
    except (ValueError, TypeError, msgpack.ExtraData) as exc:
        raise ValueError(f"not a journal record: {exc}") from exc
    if version != RECORD_VERSION:
        raise ValueError(f"journal record of version {version}, expected {RECORD_VERSION}")
    try:
        event, _ = prepare_event(body, namespace, entity=entity, check=check, now=now)
    except ValidationError as exc:  # what an earlier version took, this one refuses
        raise ValueError(f"journal record no longer valid: {exc}") from exc
    event.id = event_id
    if not event.timestamp:  # taken then, though stored after a restart
        event.timestamp = int(now)
    return event


class EventIntake:
    """Taking one submitted event: decoded, completed, validated, then journaled (201 at once)
    or, without a journal or for an event whose id the client chose, stored before the answer.
    Shared by the route and by :class:`pipeline.backend.api.event_intake.FastEvents`."""

    def __init__(
        self, offer: Offer, metrics: BackendMetrics, *, journal: IntakeJournal | None = None,
        namespace_exists: Callable[[str], bool] = lambda name: True, wall_clock: Callable[[], float] = time.time,
    ) -> None:  # fmt: skip
        self.offer = offer
        self.metrics = metrics
        self.journal = journal
        self.namespace_exists = namespace_exists
        self.wall_clock = wall_clock
        self._received = metrics.events_received.labels("api")  # looked up once: labels() costs a lock and a tuple

    async def submit(
        self, body: bytes, namespace: str, entity: str | None, check: str | None, client: str
    ) -> Response | None:
        """The refusal, the 201 with a warning, or None: created, nothing to add (the caller
        answers a bare 201 at its cheapest)."""
        metrics = self.metrics
        self._received.inc()
        if not self.namespace_exists(namespace):
            metrics.events_rejected.labels("api").inc()
            return unknown_namespace(namespace)
        ignored: list[str] = []
        now = self.wall_clock()
        try:
            event, replays = prepare_event(body, namespace, entity=entity, check=check, now=now,
                                          ignored=ignored)  # fmt: skip
        except ValidationError as exc:
            metrics.events_rejected.labels("api").inc()
            log.info("rejected event from API", client=client, error=exc)
            return error_response(400, str(exc))
        if ignored:
            metrics.fields_ignored.inc(len(ignored))
            log.debug("unknown fields ignored", client=client, fields=",".join(ignored))
        refusal = await self._take(event, replays, body, namespace, entity, check, now)
        if refusal is not None:
            return refusal
        return Response(status_code=201, headers=ignored_warning(ignored)) if ignored else None

    async def _take(
        self, event: Event, replays: Replays, body: bytes, namespace: str, entity: str | None, check: str | None,
        now: float,
    ) -> Response | None:  # fmt: skip
        # A client's own id may be a used one, renumbered by the processor: journaled, its replay
        # after a crash could not tell a stored result from a new one. Such events (sensuctl's
        # resolve) are stored before the answer, as they always were.
        if self.journal is None or replays is not Replays.NONE:
            return await self._store(event, replays)
        if not small_body(len(body)) and (size := len(event.to_msgpack())) > MAX_EVENT_BYTES:
            self.metrics.events_rejected.labels("api").inc()
            return error_response(413, str(EventTooLarge(size, MAX_EVENT_BYTES)))
        # ormsgpack: msgpack's packb makes a Packer (and its 256 KiB buffer) a call, 2.7 % of the
        # backend's CPU in the events bench; the same bytes (plain str, bytes, None and numbers)
        record = ormsgpack.packb([RECORD_VERSION, body, namespace, entity, check, event.id, now])
        try:
            taken = await self.journal.take(event, record)
        except OSError as exc:
            self.journal.metrics.failures.inc()
            log.error("intake journal not written; event refused", error=exc)
            return error_response(500, "the intake journal could not be written; try again")
        return None if taken else busy(self.metrics, "api")

    async def _store(self, event: Event, replays: Replays) -> Response | None:
        try:
            (outcome,) = await store_all(self.offer, [event], replays=replays)
        except PipelineFull:
            return busy(self.metrics, "api")
        except EventTooLarge as exc:
            self.metrics.events_rejected.labels("api").inc()
            return error_response(413, str(exc))
        if outcome is Outcome.FAILED:
            return error_response(500, "the event store failed; try again")
        if outcome is Outcome.REFUSED:
            return refused_by_store()
        return None


def event_routes(
    store: StoreService,
    offer: Offer,
    metrics: BackendMetrics,
    delete_event: DeleteEvent,
    *,
    namespace_exists: Callable[[str], bool] = lambda name: True,
    wall_clock: Callable[[], float] = time.time,
    intake: EventIntake | None = None,
) -> list[Route]:
    """The events API's routes; ``intake``: how a submitted event is taken (by default, stored
    before the answer)."""
    taker = intake or EventIntake(offer, metrics, namespace_exists=namespace_exists, wall_clock=wall_clock)

    @takes_list_query
    async def list_events(request: Request) -> Response:
        """The latest events of a namespace (or of one entity); under ``/api/core/v2/events``, of all."""
        p = request.path_params
        events = await store.list_events(p.get("namespace"), p.get("entity"))
        return listed(request, "Event", events, event_key, Event.to_dict)

    async def get_event(request: Request) -> Response:
        p = request.path_params
        event = await store.get_event(p["namespace"], p["entity"], p["check"])
        if event is None:
            return not_found("event", f"{p['entity']}/{p['check']}", p["namespace"])
        return JSONResponse(event.to_dict())

    async def create_event(request: Request) -> Response:
        p = request.path_params
        body = await request.body()  # within --max-body-size: the HTTP server refuses more, unread
        answer = await taker.submit(body, p["namespace"], p.get("entity"), p.get("check"), client_of(request))
        return Response(status_code=201) if answer is None else answer

    async def remove_event(request: Request) -> Response:
        p = request.path_params
        if not await delete_event(p["namespace"], p["entity"], p["check"]):
            return not_found("event", f"{p['entity']}/{p['check']}", p["namespace"])
        return Response(status_code=204)

    return [
        Route("/api/core/v2/events", list_events, methods=["GET"]),
        Route(EVENTS, list_events, methods=["GET"]),
        Route(EVENTS, create_event, methods=["POST"]),
        Route(EVENTS + "/{entity}", list_events, methods=["GET"]),
        Route(EVENTS + "/{entity}/{check}", get_event, methods=["GET"]),
        Route(EVENTS + "/{entity}/{check}", create_event, methods=["PUT", "POST"]),
        Route(EVENTS + "/{entity}/{check}", remove_event, methods=["DELETE"]),
    ]

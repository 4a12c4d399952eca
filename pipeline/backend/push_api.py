"""Change events pushed in other tools' formats: Sematext's Events API and StackState's receiver.

``POST /{token}/event`` and ``/{token}/events`` (Sematext; the token in the path is an ingest
key) and ``POST /stsAgent/intake?api_key=KEY`` (also under ``/receiver``; StackState). The
body is mapped by the pure adapters of :mod:`pipeline.core.push`; every event then takes the
path of any other (state, store, pipeline). Sematext's documented curl lines send no
Content-Type; the body is read as JSON whatever the header says.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pipeline.backend.eventd import Outcome, Replays
from pipeline.backend.intake import Offer, PipelineFull, busy, refused_by_store, store_all
from pipeline.backend.throttle import AuthGuard, source_of
from pipeline.core.push import sematext, stackstate
from pipeline.core.push.common import PushContext
from pipeline.errors import EventTooLarge, ValidationError
from pipeline.http_answers import error_response
from pipeline.http_params import takes_any_query
from pipeline.logs import get_logger
from pipeline.metrics import BackendMetrics
from pipeline.model import Event

log = get_logger("backend.push")
#: Why the push routes take any query parameter, unlike every other route: they are other
#: products' wire formats, whose agents and libraries may send parameters pipeline does not know;
#: refusing those would break a client that works against the real service. Only StackState's
#: ``api_key`` is read.
OTHER_AGENTS = "other products' wire formats: their clients send parameters of their own"


def client_host(request: Request) -> str:
    """The pushing machine's name when the body names no host: the backend's own for loopback."""
    host = request.client.host if request.client else ""
    return socket.gethostname() if host in ("", "127.0.0.1", "::1", "localhost") else host


def push_routes(
    offer: Offer,
    metrics: BackendMetrics,
    key_ok: Callable[[str], bool],
    guard: AuthGuard,
    *,
    change_handlers: list[str],
    wall_clock: Callable[[], float] = time.time,
) -> list[Route]:
    async def accept(request: Request, source: str, key: str, parse: Callable[[bytes, PushContext], list[Event]],
                     status: int) -> Response:  # fmt: skip
        metrics.push_requests.labels(source).inc()
        if (throttled := guard.refusal(source_of(request))) is not None:
            metrics.push_refused.labels(source, "throttled").inc()
            return throttled
        if not key_ok(key):
            metrics.push_refused.labels(source, "unauthorized").inc()
            guard.failed(source_of(request), "ingest_key")
            return error_response(401, "unknown or missing ingest key")
        body = await request.body()  # within --max-body-size: the HTTP server refuses more, unread
        context = PushContext(default_host=client_host(request), now=wall_clock(), handlers=change_handlers)
        try:
            events = parse(body, context)
            for event in events:
                event.check_ranges()  # built by the adapter, not decoded: its numbers are checked here
        except ValidationError as exc:
            metrics.push_refused.labels(source, "invalid").inc()
            log.info("push refused", source=source, error=exc)
            return error_response(400, str(exc))
        try:
            outcomes = await store_all(offer, events, replays=Replays.NONE)  # the adapters made the ids
        except PipelineFull:
            return busy(metrics, source)
        except EventTooLarge as exc:
            metrics.push_refused.labels(source, "too_large").inc()
            return error_response(413, str(exc))
        if Outcome.FAILED in outcomes:
            return error_response(500, "the event store failed; try again")
        if refused := outcomes.count(Outcome.REFUSED):
            metrics.push_refused.labels(source, "store").inc()
            return refused_by_store(refused, len(events))
        metrics.events_received.labels(source).inc(len(events))
        return JSONResponse({"accepted": len(events)}, status_code=status)

    @takes_any_query(OTHER_AGENTS)
    async def sematext_one(request: Request) -> Response:
        return await accept(request, "sematext", request.path_params["token"],
                            lambda body, ctx: sematext.parse(body, ctx, many=False), 201)  # fmt: skip

    @takes_any_query(OTHER_AGENTS)
    async def sematext_many(request: Request) -> Response:
        return await accept(request, "sematext", request.path_params["token"],
                            lambda body, ctx: sematext.parse(body, ctx, many=True), 201)  # fmt: skip

    @takes_any_query(OTHER_AGENTS)
    async def stackstate_intake(request: Request) -> Response:
        return await accept(request, "stackstate", request.query_params.get("api_key", ""), stackstate.parse, 200)

    return [
        Route("/stsAgent/intake", stackstate_intake, methods=["POST"]),
        Route("/receiver/stsAgent/intake", stackstate_intake, methods=["POST"]),
        Route("/{token}/event", sematext_one, methods=["POST"]),
        Route("/{token}/events", sematext_many, methods=["POST"]),
    ]

"""The agent's local HTTP API (Sensu's port 3031): external results, health, metrics.

``POST /events`` takes a Sensu Go event from a local program (a cron job, a script) and
answers 202 once it is on disk in the spool, so a 202 is never lost to an agent crash. As
Sensu Go's agent prepares it: the entity is always the agent's own (an entity of another
name makes the check about that proxy entity), a missing interval is 1, ``executed`` and
``timestamp`` are now when the submitter left them at 0 (a result a script ran earlier keeps
its time, as in Sensu Go), ``issued`` is kept as given, the namespace is the agent's, and an
id is given when there is none. An event larger than
the maximum event size once prepared (its entity included) is refused with 413; one the spool
does not take within 10 s (a full or failing disk) with 503 and ``Retry-After``, and it is
then not spooled at all.

``POST /events`` without a query string is answered by ``pipeline.http`` without ASGI
(:meth:`AgentApi.direct`: Starlette's request objects and middleware cost more per request than
the rest of the route); every other request, and the same route through ASGI or with a query
string (refused 400), goes to the Starlette app, which answers alike.

``GET /events/set-aside`` lists the events the agent set aside instead of sending (too large,
or refused by the backend), newest first (``?limit=``, 100 by default, 1000 at most).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from pipeline import __version__
from pipeline.errors import EventTooLarge, SpoolUnavailable, ValidationError
from pipeline.http_answers import EXCEPTION_HANDLERS, answer_of, error_response
from pipeline.http_exchange import Answer, BodyTaker
from pipeline.http_params import guarded, takes_query
from pipeline.model import Entity, Event, new_event_id

#: Set-aside events one ``GET /events/set-aside`` lists at most.
SET_ASIDE_LIST_MAX = 1000


def prepare_local_event(body: bytes, agent: Entity, now: float) -> Event:
    """A locally submitted event, completed as Sensu Go's agent does (raises ValidationError);
    fields the model does not know are dropped, as Sensu Go's JSON decoding does. Its entity is
    ``agent`` itself, not a copy: pack it (:func:`~pipeline.model.event.pack_with_entity`) rather than change it."""
    event = Event.from_json(body, ignored=[])
    if event.check is None and event.metrics is None:
        raise ValidationError("", "event must contain a check or metrics")
    given = event.entity.metadata.name if event.entity is not None else ""
    namespace = agent.metadata.namespace
    event.entity = agent
    event.metadata.namespace = namespace
    event.timestamp = event.timestamp or int(now)
    if event.check is not None:
        check = event.check
        if not check.metadata.name:
            raise ValidationError("check.metadata.name", "a check needs a name")
        if given and given != agent.metadata.name:
            check.proxy_entity_name = given
        check.metadata.namespace = namespace
        check.interval = check.interval or 1
        check.executed = check.executed or int(now)
        check.processed_by = agent.metadata.name
    event.validate(entity_validated=True)  # the agent's own: validated as the agent started
    # given after validating: the id checked is the submitter's (ours is a UUID by making, and
    # parsing it back cost about as much as making it)
    event.id = event.id or new_event_id()
    return event


#: What ``POST /events`` answers once the event is on disk (Starlette's ``Response(status_code=202)``).
_ACCEPTED: Answer = (202, [(b"content-length", b"0")], b"")
#: Seconds a client refused 503 (the spool did not take its event in time) is told to wait.
RETRY_AFTER = 10


def _refusal(status: int, error: str) -> Response:
    return error_response(status, error, headers={"Retry-After": str(RETRY_AFTER)} if status == 503 else None)


class AgentApi:
    """The agent API's ASGI app (``app``, Starlette), and ``POST /events`` for the HTTP server to
    answer without ASGI (:meth:`direct`), with the same bytes.

    ``accept`` takes a request body and gives the status and the error message (empty for 202)."""

    def __init__(self, app: Starlette, accept: Callable[[bytes], Awaitable[tuple[int, str]]] | None) -> None:
        self.app = app
        self.accept = accept

    @property
    def routes(self) -> list[BaseRoute]:
        return self.app.routes

    def direct(
        self, method: bytes, target: bytes, headers: list[tuple[bytes, bytes]], client: tuple[str, int] | None
    ) -> BodyTaker | None:
        """``POST /events`` for the HTTP server to answer without ASGI (its scope, messages and
        exchange cost about a tenth of the route's CPU); any other target, a query string
        included, goes through ASGI (:data:`pipeline.http_exchange.Direct`)."""
        if self.accept is None or method != b"POST" or target != b"/events":
            return None
        return self._answer

    async def _answer(self, body: bytes) -> Answer:
        assert self.accept is not None
        status, error = await self.accept(body)
        return _ACCEPTED if not error else answer_of(_refusal(status, error))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def create_agent_api(
    registry: CollectorRegistry,
    is_connected: Callable[[], bool],
    submit: Callable[[Event], Awaitable[None]] | None = None,
    entity: Entity | None = None,
    *,
    wall_clock: Callable[[], float] = time.time,
    set_aside: Callable[[int], Awaitable[Sequence[Any]]] | None = None,
    unknown_parameters: Counter | None = None,
) -> AgentApi:
    """The agent's API: :func:`create_agent_app`, with ``POST /events`` taken directly too."""
    app = create_agent_app(registry, is_connected, submit, entity, wall_clock=wall_clock, set_aside=set_aside,
                           unknown_parameters=unknown_parameters)  # fmt: skip
    accept = _acceptor(submit, entity, wall_clock) if submit is not None and entity is not None else None
    return AgentApi(app, accept)


def _acceptor(
    submit: Callable[[Event], Awaitable[None]], entity: Entity, wall_clock: Callable[[], float]
) -> Callable[[bytes], Awaitable[tuple[int, str]]]:
    async def accept(body: bytes) -> tuple[int, str]:
        """``POST /events``: (202, "") once the event is on disk, or a refusal (400, 413, 503: not
        spooled in time) and why."""
        try:
            event = prepare_local_event(body, entity, wall_clock())
        except ValidationError as exc:
            return 400, str(exc)
        try:
            await submit(event)
        except EventTooLarge as exc:
            return 413, str(exc)
        except SpoolUnavailable as exc:
            return 503, str(exc)
        return 202, ""

    return accept


def create_agent_app(
    registry: CollectorRegistry,
    is_connected: Callable[[], bool],
    submit: Callable[[Event], Awaitable[None]] | None = None,
    entity: Entity | None = None,
    *,
    wall_clock: Callable[[], float] = time.time,
    set_aside: Callable[[int], Awaitable[Sequence[Any]]] | None = None,
    unknown_parameters: Counter | None = None,
) -> Starlette:
    """The agent's API app. A query parameter a route does not take is refused (400 naming it) and
    counted by route in ``unknown_parameters`` (by default a new
    ``pipeline_agent_api_unknown_parameters`` on ``registry``)."""
    if unknown_parameters is None:
        unknown_parameters = Counter(
            "pipeline_agent_api_unknown_parameters", "Agent API requests refused for a query parameter",
            ["path"], registry=registry,
        )  # fmt: skip
    counter = unknown_parameters
    accept = _acceptor(submit, entity, wall_clock) if submit is not None and entity is not None else None

    async def healthz(request: Request) -> Response:
        # Sensu Go's agent answers exactly these bodies.
        if is_connected():
            return PlainTextResponse("ok")
        return PlainTextResponse("sensu backend unavailable", status_code=503)

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    async def version(request: Request) -> Response:
        return JSONResponse({"version": __version__})

    async def post_event(request: Request) -> Response:
        assert accept is not None
        # within 1 MiB: the HTTP server refuses more, unread
        status, error = await accept(await request.body())
        return _refusal(status, error) if error else Response(status_code=status)

    @takes_query("limit")
    async def list_set_aside(request: Request) -> Response:
        assert set_aside is not None
        raw = request.query_params.get("limit", "100")
        if len(raw) > 4 or not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= SET_ASIDE_LIST_MAX:
            return error_response(400, f"limit: expected 1 to {SET_ASIDE_LIST_MAX}, got {raw[:20]!r}")
        return JSONResponse([record.to_dict() for record in await set_aside(int(raw))])

    routes = [Route("/healthz", healthz), Route("/metrics", metrics), Route("/version", version)]
    if accept is not None:
        routes.append(Route("/events", post_event, methods=["POST"]))
    if set_aside is not None:
        routes.append(Route("/events/set-aside", list_set_aside))
    return Starlette(routes=guarded(routes, lambda path: counter.labels(path).inc()),
                     exception_handlers=EXCEPTION_HANDLERS)  # fmt: skip

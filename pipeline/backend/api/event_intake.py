"""The events API's hot routes, answered without Starlette's routing and request objects.

``POST /api/core/v2/namespaces/{ns}/events`` and ``PUT``/``POST .../events/{entity}/{check}``
with no query string are taken here, in front of the app (behind the key gate): Starlette's
matching through every route, its request, its response and its middlewares cost about as much
CPU as the rest of the request (``bench/api_events.py``). What they do is the route's own
(:class:`pipeline.backend.api.events.EventIntake`); a query string goes to the route, which
refuses parameters it does not declare. The HTTP server asks :meth:`FastEvents.direct` first
(through the key gate's ``direct``), and answers those submissions without ASGI at all.

Every other request goes to the app, and first waits for the events journaled before it (by
the backend or its front process) to be stored
(:meth:`pipeline.backend.journal.IntakeJournal.barrier`), so that what a client does right
after a 201 (a read through the API or the dashboard, deleting the event, its entity or
its namespace) sees what was written; only ``/health``, ``/ready``, ``/metrics`` and
``/version`` do not wait.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

import trio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipeline.backend.api.events import EventIntake
from pipeline.backend.journal import IntakeJournal
from pipeline.http_answers import answer_of
from pipeline.http_exchange import Answer, BodyTaker
from pipeline.logs import get_logger

log = get_logger("backend.api")

#: Seconds a request waits for the events journaled before it (a store that keeps failing must
#: not hold every request): beyond, it is served without them, counted and logged.
BARRIER_WAIT = 5.0
#: Paths that say nothing of the events, served without waiting for them.
_UNORDERED = re.compile(r"/(health|ready|metrics|version)\Z")
_SUBMIT = re.compile(r"/api/core/v2/namespaces/([^/]+)/events(?:/([^/]+)/([^/]+))?")
_SUBMIT_TARGET = re.compile(rb"/api/core/v2/namespaces/([^/]+)/events(?:/([^/]+)/([^/]+))?")
_CREATED: Message = {"type": "http.response.start", "status": 201, "headers": [(b"content-length", b"0")]}
_EMPTY: Message = {"type": "http.response.body", "body": b""}
_CREATED_HEADERS = [(b"content-length", b"0")]


class FastEvents:
    """ASGI middleware: the event submissions taken at once, reads held behind the journal."""

    def __init__(
        self, app: ASGIApp, intake: EventIntake, journal: IntakeJournal | None,
        catch_up: Callable[[], Awaitable[None]] | None = None,
    ) -> None:  # fmt: skip
        self.app = app
        self.intake = intake
        self.journal = journal
        #: takes what the front process journaled and gave already (:mod:`pipeline.backend.front_process`)
        self.catch_up = catch_up

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            method = scope["method"]
            if (
                (method == "POST" or method == "PUT")
                and not scope["query_string"]
                and (match := _SUBMIT.fullmatch(scope["path"])) is not None
                and (method == "POST" or match[2] is not None)
            ):
                await self._submit(scope, receive, send, *match.groups())
                return
            if (
                self.journal is not None
                and (self.catch_up is not None or self.journal.pending)
                and not _UNORDERED.match(scope["path"])
            ):
                await self._barrier(self.journal)
        await self.app(scope, receive, send)

    def direct(
        self, method: bytes, target: bytes, headers: list[tuple[bytes, bytes]], client: tuple[str, int] | None
    ) -> BodyTaker | None:
        """The submissions for the HTTP server to answer without ASGI (:data:`pipeline.http_exchange.Direct`).
        A target with a query string or an escape goes through ASGI (to the same answer)."""
        if (
            (method == b"POST" or method == b"PUT")
            and b"?" not in target
            and b"%" not in target
            and (match := _SUBMIT_TARGET.fullmatch(target)) is not None
            and (method == b"POST" or match[2] is not None)
        ):
            namespace = match[1].decode("latin-1")
            entity = check = None
            if match[2] is not None:
                entity, check = match[2].decode("latin-1"), match[3].decode("latin-1")
            source = f"{client[0]}:{client[1]}" if client else "unknown"
            intake = self.intake

            async def take(body: bytes) -> Answer:
                answer = await intake.submit(body, namespace, entity, check, source)
                return (201, _CREATED_HEADERS, b"") if answer is None else answer_of(answer)

            return take
        return None

    async def _barrier(self, journal: IntakeJournal) -> None:
        with trio.move_on_after(BARRIER_WAIT):
            if self.catch_up is not None:
                await self.catch_up()
            await journal.barrier()
            return
        journal.metrics.barrier_timeouts.inc()
        log.warning("request served before the events journaled ahead of it were stored", seconds=BARRIER_WAIT,
                    pending=journal.pending)  # fmt: skip

    async def _submit(
        self, scope: Scope, receive: Receive, send: Send, namespace: str, entity: str | None, check: str | None
    ) -> None:
        chunks: list[bytes] = []
        while True:  # within --max-body-size: the HTTP server refuses more, unread
            message = await receive()
            if message["type"] != "http.request":
                return  # the client is gone
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        client = scope.get("client")
        answer = await self.intake.submit(b"".join(chunks), namespace, entity, check,
                                          f"{client[0]}:{client[1]}" if client else "unknown")  # fmt: skip
        if answer is not None:
            await answer(scope, receive, send)
            return
        await send(_CREATED)
        await send(_EMPTY)

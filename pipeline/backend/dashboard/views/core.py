"""The dashboard's own plumbing: ``/login``, ``/logout``, the live ``/stream`` and ``/static``.

Login takes an API key (its role: ``admin`` or ``viewer``; an ingest key may only push) or a
user's password, slowed and counted with the API's failed logins (:class:`AuthGuard`), and
opens a session: an HttpOnly, SameSite=Strict cookie (Secure over https). ``next`` is followed
only when it is a path on this site.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import trio
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from pipeline.backend.dashboard.changes import Changes, Subscriber, TooManyStreams
from pipeline.backend.dashboard.context import DashboardContext
from pipeline.backend.dashboard.pages import form_of, local_path, render, viewer_of
from pipeline.backend.dashboard.sessions import COOKIE, DashboardSessions
from pipeline.backend.keys import INGEST
from pipeline.backend.throttle import source_of
from pipeline.http_params import takes_query
from pipeline.logs import get_logger

log = get_logger("backend.dashboard")

STATIC = Path(__file__).resolve().parents[1] / "static"
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
#: Seconds between keep-alive comments on a quiet stream (a closed tab is noticed by then).
KEEPALIVE = 15.0
#: Seconds a stream waits after sending, gathering what changes meanwhile into one notice: a
#: page refetches at most this often however many events arrive.
COALESCE = 0.5


def routes(ctx: DashboardContext) -> list[BaseRoute]:
    static = {p.name: (p.read_bytes(), _TYPES[p.suffix]) for p in STATIC.iterdir() if p.suffix in _TYPES}

    @takes_query("next")
    async def login_form(request: Request) -> Response:
        return render(request, "login.html", None, next=local_path(request.query_params.get("next", "/")), error="")

    @takes_query("next")
    async def login(request: Request) -> Response:
        form = await form_of(request)
        target = local_path(str(form.get("next", "") or request.query_params.get("next", "/")))
        source = source_of(request)

        def again(status: int, error: str) -> Response:
            return render(request, "login.html", None, status=status, next=target, error=error)

        if (throttled := ctx.auth_guard.refusal(source)) is not None:
            return again(429, f"too many failed attempts: retry in {throttled.headers.get('retry-after', '?')} s")
        key, user = str(form.get("api_key", "")).strip(), str(form.get("username", ""))
        if key:
            role, principal = ctx.keys.role_of_key(key), f"key {key[:4]}…"
            failure = "api_key"
        else:
            found = ctx.keys.user_of("", {"username": user, "password": str(form.get("password", ""))})
            role, principal = (found[1], found[0]) if found else (None, user)
            failure = "password"
        if role is None:
            ctx.auth_guard.failed(source, failure)
            return again(401, "unknown API key" if key else "unknown user or wrong password")
        if role == INGEST:
            ctx.sessions.refuse("dashboard_forbidden")
            log.info("dashboard login refused: an ingest key", source=source)
            return again(403, "an ingest key may only push events; log in with an admin or viewer key")
        sid = ctx.sessions.open(principal, role, ctx.wall_clock())
        log.info("dashboard login", principal=principal, role=role, source=source)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(COOKIE, sid, max_age=int(ctx.sessions.lifetime), path="/", httponly=True,
                            samesite="strict", secure=request.url.scheme == "https")  # fmt: skip
        return response

    async def logout(request: Request) -> Response:
        sid = request.cookies.get(COOKIE, "")
        viewer = ctx.sessions.viewer(sid, ctx.wall_clock())
        if viewer is not None:
            form = await form_of(request)
            token = request.headers.get("x-csrf-token", "") or str(form.get("csrf", ""))
            if not viewer.csrf_matches(token):
                ctx.sessions.refuse("dashboard_csrf")
                return HTMLResponse("the form is stale or forged (CSRF token): reload the page", status_code=403)
            ctx.sessions.close(sid)
            log.info("dashboard logout", principal=viewer.principal)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return response

    async def stream(request: Request) -> Response:
        sid = request.cookies.get(COOKIE, "")
        if viewer_of(request, ctx.sessions, ctx.wall_clock()) is None:
            ctx.sessions.refuse("dashboard_unauthenticated")
            return HTMLResponse("log in first", status_code=401)
        return EventStream(ctx.live, ctx.sessions, sid, ctx.wall_clock)

    async def static_file(request: Request) -> Response:
        found = static.get(request.path_params["name"])
        if found is None:
            return HTMLResponse("no such file", status_code=404)
        return Response(found[0], media_type=found[1], headers={"Cache-Control": "public, max-age=3600"})

    return [
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/stream", stream, methods=["GET"]),
        Route("/static/{name}", static_file, methods=["GET"]),
    ]


class EventStream(Response):
    """``text/event-stream``: one ``event: <kind>`` per kind of change (see :mod:`..changes`),
    a comment every :data:`KEEPALIVE` seconds; it ends when the session does."""

    def __init__(self, changes: Changes, sessions: DashboardSessions, sid: str, clock: Callable[[], float]) -> None:
        super().__init__(media_type="text/event-stream")
        self.changes, self.sessions, self.sid, self.clock = changes, sessions, sid, clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            with self.changes.subscribe() as subscriber:
                await self._run(subscriber, send)
        except TooManyStreams:
            await HTMLResponse("too many open dashboard streams", status_code=503)(scope, receive, send)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return  # the tab was closed

    async def _run(self, subscriber: Subscriber, send: Send) -> None:
        headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache"),
                   (b"x-accel-buffering", b"no")]  # fmt: skip
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"retry: 3000\n: connected\n\n", "more_body": True})
        while self.sessions.viewer(self.sid, self.clock()) is not None:
            kinds = await subscriber.take(KEEPALIVE)
            body = "".join(f"event: {kind}\ndata: {kind}\n\n" for kind in kinds) or ": keep-alive\n\n"
            await send({"type": "http.response.body", "body": body.encode(), "more_body": True})
            await trio.sleep(COALESCE)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
